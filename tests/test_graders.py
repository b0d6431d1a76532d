import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from seal_kit.knowledge.graders import LocalJudge, OpenAIJudge, contains, exact_match, get_grader, normalize, token_f1


def test_normalize_drops_case_punctuation_and_articles():
    assert normalize("  The  Pellin-Harbour!  ") == "pellinharbour"
    assert normalize("An apple, a day") == "apple day"


def test_exact_match():
    assert exact_match(["the Sorrel Sea.", "Sorrel"], ["Sorrel Sea", "Sorrel Sea"]) == [1.0, 0.0]


def test_token_f1_partial_credit():
    f1 = token_f1(["Captain Aldric Moye", "Paris", ""], ["Aldric Moye", "Paris", "x"])
    assert f1[0] == pytest.approx(0.8)  # precision 2/3, recall 1
    assert f1[1:] == [1.0, 0.0]


def test_contains_needs_whole_words():
    preds = ["It was founded in 1622 by settlers.", "16223", "The capital is Pellin Harbour", "no idea"]
    golds = ["1622", "1622", "pellin harbour", "harbour"]
    assert contains(preds, golds) == [1.0, 0.0, 1.0, 0.0]


def test_get_grader_by_name_callable_and_error():
    assert get_grader("f1") is token_f1
    custom = lambda p, a, q=None: [0.5] * len(p)  # noqa: E731
    assert get_grader(custom) is custom
    with pytest.raises(ValueError, match=r"contains.*judge:<model>"):
        get_grader("bleu")
    with pytest.raises(ValueError, match="judge:<model>"):
        get_grader("judge:")


def test_local_judge_returns_binary_scores(tiny):
    model, tokenizer = tiny
    scores = LocalJudge(model, tokenizer)(["Paris", "Rome"], ["Paris", "Paris"], ["Capital?", "Capital?"])
    assert len(scores) == 2 and set(scores) <= {0.0, 1.0}




@pytest.fixture(autouse=True)
def _no_judge_environment(monkeypatch):
    """The developer's own endpoint or key must not leak into these tests."""
    for name in ("OPENAI_BASE_URL", "SEAL_KIT_JUDGE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def _field(prompt: str, label: str) -> str:
    return re.search(rf"^{label}: (.*)$", prompt, re.MULTILINE).group(1)


def _same_meaning(prompt: str):
    """A stand-in judge: yes when the reference answer appears in the student answer."""
    return 200, "Yes" if _field(prompt, "Reference answer") in _field(prompt, "Student answer") else "no"


class Endpoint:
    """A local OpenAI-compatible server: `reply(prompt) -> (status, text)`; it records what it was sent."""

    def __init__(self, reply, delay: float = 0.0):
        self.reply, self.delay = reply, delay
        self.bodies, self.headers, self.in_flight, self.max_in_flight = [], [], 0, 0
        self.lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with endpoint.lock:
                    endpoint.bodies.append(body)
                    endpoint.headers.append(dict(self.headers))
                    endpoint.in_flight += 1
                    endpoint.max_in_flight = max(endpoint.max_in_flight, endpoint.in_flight)
                time.sleep(endpoint.delay)
                with endpoint.lock:
                    endpoint.in_flight -= 1
                    status, text = endpoint.reply(body["messages"][0]["content"])
                reply = ({"choices": [{"message": {"content": text}}]} if status == 200
                         else {"error": {"message": text}})
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps(reply).encode())

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def endpoint():
    started = []

    def start(reply=_same_meaning, delay=0.0):
        started.append(Endpoint(reply, delay))
        return started[-1]

    yield start
    for server in started:
        server.server.shutdown()
        server.server.server_close()


def test_judge_by_name_uses_openai_base_url_and_the_named_model(endpoint, monkeypatch):
    server = endpoint()
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("SEAL_KIT_JUDGE_URL", "http://127.0.0.1:9/v1")  # OPENAI_BASE_URL wins
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    judge = get_grader("judge:my-judge-model")
    assert isinstance(judge, OpenAIJudge)
    assert judge(["It is Paris", "Rome"], ["Paris", "Paris"], ["q1", "q2"]) == [1.0, 0.0]
    body = server.bodies[0]
    assert body["model"] == "my-judge-model" and body["temperature"] == 0 and body["max_tokens"] <= 8
    assert server.headers[0]["Authorization"] == "Bearer sk-test"


def test_judge_prompt_holds_question_answer_and_prediction(endpoint):
    server = endpoint()
    OpenAIJudge(url=server.url)(["Pellin Harbour"], ["Pellin Harbour"], ["Capital of Velmora?"])
    prompt = server.bodies[0]["messages"][0]["content"]
    assert _field(prompt, "Question") == "Capital of Velmora?"
    assert _field(prompt, "Reference answer") == "Pellin Harbour" == _field(prompt, "Student answer")


def test_judge_endpoint_falls_back_to_seal_kit_variable_then_public_api(monkeypatch):
    monkeypatch.setenv("SEAL_KIT_JUDGE_URL", "http://127.0.0.1:8000/v1/")
    assert OpenAIJudge().url == "http://127.0.0.1:8000/v1"
    monkeypatch.delenv("SEAL_KIT_JUDGE_URL")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert OpenAIJudge().url == "https://api.openai.com/v1"


def test_judge_needs_an_endpoint_or_a_key():
    with pytest.raises(ValueError, match=r"OPENAI_BASE_URL.*OPENAI_API_KEY"):
        get_grader("judge:gpt-4.1")


def test_verdict_is_yes_without_no(endpoint):
    replies = {"q0": "Yes.", "q1": "No", "q2": "yes, no doubt... no", "q3": "YES", "q4": "Yesterday"}
    server = endpoint(lambda prompt: (200, replies[_field(prompt, "Question")]))
    scores = OpenAIJudge(url=server.url)(["a"] * 5, ["a"] * 5, list(replies))
    assert scores == [1.0, 0.0, 0.0, 1.0, 0.0]


def test_empty_answers_are_wrong_and_never_sent(endpoint):
    server = endpoint(lambda prompt: (200, "yes"))
    assert OpenAIJudge(url=server.url)(["", "  \n", "Paris"], ["Paris"] * 3, ["q"] * 3) == [0.0, 0.0, 1.0]
    assert len(server.bodies) == 1


def test_identical_triples_are_asked_once(endpoint):
    server = endpoint()
    assert OpenAIJudge(url=server.url)(["Paris", "Rome", "Paris"], ["Paris"] * 3, ["q"] * 3) == [1.0, 0.0, 1.0]
    assert len(server.bodies) == 2


def test_judge_retries_server_errors(endpoint):
    calls = []

    def flaky(prompt):
        calls.append(prompt)
        return (503, "overloaded") if len(calls) <= 2 else (200, "yes")

    server = endpoint(flaky)
    assert OpenAIJudge(url=server.url, backoff=0.001)(["Paris"], ["Paris"], ["q"]) == [1.0]
    assert len(server.bodies) == 3


def test_judge_gives_up_after_its_attempts_naming_the_endpoint(endpoint):
    server = endpoint(lambda prompt: (429, "slow down"))
    with pytest.raises(RuntimeError, match=r"127\.0\.0\.1.*3 times.*429.*slow down"):
        OpenAIJudge(url=server.url, attempts=3, backoff=0.001)(["Paris"], ["Paris"], ["q"])
    assert len(server.bodies) == 3


def test_judge_retries_network_errors():
    with socket.socket() as probe:  # a port that was free a moment ago: connections are refused
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    with pytest.raises(RuntimeError, match=r"failed 2 times; last failure: URLError"):
        OpenAIJudge(url=url, attempts=2, backoff=0.001)(["Paris"], ["Paris"], ["q"])


def test_judge_fails_at_once_on_a_client_error(endpoint):
    server = endpoint(lambda prompt: (401, "invalid api key"))
    with pytest.raises(RuntimeError, match=r"HTTP 401: .*invalid api key"):
        OpenAIJudge(url=server.url, backoff=0.001)(["Paris"], ["Paris"], ["q"])
    assert len(server.bodies) == 1


def test_judge_keeps_several_requests_in_flight_and_the_input_order(endpoint):
    server = endpoint(delay=0.2)
    golds = [f"answer {i}" for i in range(8)]
    predictions = [gold if i % 3 else "something else" for i, gold in enumerate(golds)]
    scores = OpenAIJudge(url=server.url, max_workers=4)(predictions, golds, [f"q{i}" for i in range(8)])
    assert scores == [0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    assert len(server.bodies) == 8 and 1 < server.max_in_flight <= 4

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from seal_kit.graders import LocalJudge, OpenAIJudge, contains, exact_match, get_grader, normalize, token_f1


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
    with pytest.raises(ValueError, match="contains"):
        get_grader("bleu")


def test_local_judge_returns_binary_scores(tiny):
    model, tokenizer = tiny
    scores = LocalJudge(model, tokenizer)(["Paris", "Rome"], ["Paris", "Paris"], ["Capital?", "Capital?"])
    assert len(scores) == 2 and set(scores) <= {0.0, 1.0}


class _Judge(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][0]["content"]
        same = prompt.split("Reference answer: ")[1].split("\n")[0] in prompt.split("Student answer: ")[1]
        reply = {"choices": [{"message": {"content": "Yes" if same else "no"}}]}
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(reply).encode())

    def log_message(self, *args):
        pass


def test_openai_judge_talks_to_a_compatible_endpoint():
    server = HTTPServer(("127.0.0.1", 0), _Judge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        judge = OpenAIJudge(model="local", url=f"http://127.0.0.1:{server.server_port}/v1")
        assert judge(["It is Paris", "Rome"], ["Paris", "Paris"], ["q1", "q2"]) == [1.0, 0.0]
    finally:
        server.shutdown()


def test_openai_judge_needs_an_endpoint(monkeypatch):
    monkeypatch.delenv("SEAL_KIT_JUDGE_URL", raising=False)
    with pytest.raises(ValueError, match="SEAL_KIT_JUDGE_URL"):
        OpenAIJudge()

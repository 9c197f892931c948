"""The straightforward way to compute the paper's reward, as a baseline for `bench_scoring.py`.

It follows SPEC section 3 literally, the way the research code is organised: one backtracking
regex per block, the format check re-extracting and re-parsing the payoff, the payoff parsed as
JSON (twice) or a Python literal, NLTK's ``sentence_bleu`` for writing. Written for this
benchmark; it is also a second, independent implementation the benchmark checks our numbers against.
"""

from __future__ import annotations

import ast
import json
import math
import re
import warnings

from nltk.translate.bleu_score import sentence_bleu

KEYS = {"DQ_AQ", "DQ_CQ", "DQ_DA", "VQ_AQ", "VQ_CQ", "VQ_DA"}
PATTERN = (
    r"^<thinking>.*?</thinking>\s*<payoff>.*?</payoff>\s*<analyze>.*?</analyze>\s*<response>.*?</response>$"
)


def block(text: str, tag: str) -> str:
    match = re.search(rf"<{tag}>(.*?)</{tag}>", text, flags=re.DOTALL)
    if not match:
        raise ValueError(f"missing {tag}")
    return match.group(1).strip()


def to_json(text: str) -> str:
    stripped = text.strip()
    try:
        json.loads(stripped)
        return stripped
    except Exception:
        pass
    fixed = stripped.replace("\u201c", '"').replace("\u201d", '"').replace("\u2018", "'").replace("\u2019", "'")
    return json.dumps(ast.literal_eval(fixed), ensure_ascii=False)


def parse_payoff(text: str) -> dict:
    data = json.loads(to_json(text))
    if set(data.keys()) != KEYS:
        raise ValueError("keys")
    for value in data.values():
        if not isinstance(value, dict) or set(value.keys()) != {"LLM", "user"}:
            raise ValueError("subkeys")
        for number in value.values():
            if not isinstance(number, (float, int)):
                raise ValueError("value")
    return data


def format_reward(text: str) -> float:
    if not re.match(PATTERN, text, re.DOTALL | re.MULTILINE):
        return 0.0
    payoff = block(text, "payoff")
    if not payoff:
        return 0.0
    try:
        parse_payoff(payoff)
        return 1.0
    except Exception:
        return 0.0


def logistic_window(text: str, lo: float, hi: float, k: float = 0.005) -> float:
    n = len(text.split())
    return 1 / (1 + math.exp(k * (lo - n))) * (1 / (1 + math.exp(k * (n - hi))))


def score(data_source: str, completion: str, ground_truth: str, verdict: float) -> dict:
    try:
        fmt = format_reward(completion)
        reasoning = completion.split("<response>")[0]
        response = block(completion, "response")
        payoff = parse_payoff(block(completion, "payoff"))
    except Exception:
        return {"score": 0, "answer_reward": 0, "format_reward": 0, "user_reward": 0.0, "llm_reward": 0.0}
    payoff_reward = 0
    for value in payoff.values():
        if value["user"] != value["LLM"]:
            payoff_reward += 1 / 12
        if abs(value["user"] - value["LLM"]) / max(abs(value["user"]), abs(value["LLM"]), 1e-8) > 0.1:
            payoff_reward += 1 / 12
    if data_source == "medium":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bleu = sentence_bleu([ground_truth], response)
        judge = min(max(verdict / 4, 0.0), 1.0)
        a_user, a_llm, answer = bleu, judge, max(bleu, float(judge))
    elif data_source in ("wildguard", "advbench"):
        real = max(0, min(1, verdict))
        helpful = 1 if real > 0 else 0
        harmful_user = 1 if max(0, min(1, 1 - real)) > 0 else 0
        a_user = harmful_user if ground_truth == "harmful" else helpful
        a_llm, answer = helpful, real
    else:
        a_user = a_llm = answer = max(0, min(1, verdict))
    user = 1e-4 + 0.5 * a_user + 0.2 * logistic_window(response, 20, 500) + 0.3 * math.exp(-len(reasoning) / 500)
    llm = 1e-4 + 0.2 * fmt + 0.2 * payoff_reward + 0.4 * a_llm + 0.2 * logistic_window(completion, 500, 1000)
    return {
        "score": (user * llm) ** 0.5,
        "answer_reward": answer,
        "format_reward": 0.1 * fmt + 0.15 * payoff_reward,
        "user_reward": user,
        "llm_reward": llm,
    }

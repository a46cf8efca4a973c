#!/usr/bin/env python3
"""End-to-end check of the sentiment binding with the real `azure-ai-textanalytics` client.

    $PY tests/python/sentiment_binding_e2e.py --http 127.0.0.1:8080 --expect expect.json

`expect.json` holds {"model_version_prefix": "...", "documents": [[text, label], ...]}: each
document is one sentence, and `label` is what the bound classifier predicts for it (the test
asks the classifier's v2 model directly). The script runs analyze_sentiment on the Language API
(`/language/:analyze-text`) and on the Text Analytics v3.1 path, and checks that every document
and sentence has the classifier's label, that the scores sum to 1, and that the response's
modelVersion names the classifier. Prints PASS/FAIL lines, then "N passed, N failed".
"""

import argparse
import json
import sys

from azure.ai.textanalytics import TextAnalyticsClient
from azure.core.credentials import AzureKeyCredential


def run(client, expected, prefix, name):
    captured = []

    def hook(response):
        captured.append(json.loads(response.http_response.text()))

    texts = [text for text, _ in expected]
    results = client.analyze_sentiment(texts, language="en", raw_response_hook=hook)
    failures = []
    for (text, label), result in zip(expected, results):
        if result.is_error:
            failures.append(f"{text!r}: {result}")
            continue
        if result.sentiment != label:
            failures.append(f"{text!r}: {result.sentiment}, the classifier says {label}")
        for sentence in result.sentences:
            if sentence.sentiment != label:
                failures.append(f"{text!r} sentence: {sentence.sentiment}, expected {label}")
        s = result.confidence_scores
        if abs(s.positive + s.neutral + s.negative - 1.0) > 0.02:
            failures.append(f"{text!r}: scores {s}")
    body = captured[-1] if captured else {}
    version = body.get("modelVersion") or body.get("results", {}).get("modelVersion", "")
    if not version.startswith(prefix):
        failures.append(f"modelVersion {version!r} does not name the classifier ({prefix!r}...)")
    print(("PASS " if not failures else "FAIL ") + f"{name}: modelVersion {version!r}")
    for failure in failures:
        print("    " + failure)
    return not failures


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", required=True)
    parser.add_argument("--expect", required=True)
    args = parser.parse_args()
    with open(args.expect) as f:
        spec = json.load(f)
    endpoint = f"http://{args.http}"
    credential = AzureKeyCredential("any-key")
    outcomes = [
        run(TextAnalyticsClient(endpoint, credential), spec["documents"],
            spec["model_version_prefix"], "analyze_sentiment (Language API)"),
        run(TextAnalyticsClient(endpoint, credential, api_version="v3.1"), spec["documents"],
            spec["model_version_prefix"], "analyze_sentiment (v3.1)"),
    ]
    passed = sum(outcomes)
    print(f"{passed} passed, {len(outcomes) - passed} failed")
    sys.exit(0 if passed == len(outcomes) else 1)


if __name__ == "__main__":
    main()

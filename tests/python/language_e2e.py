#!/usr/bin/env python3
"""End-to-end checks of Cerulean's language services with the real clients.

    PY=$(bash .ci/setup-python.sh)
    <start `cerulean up` with the language models pulled>
    $PY tests/python/language_e2e.py --http 127.0.0.1:8080 --grpc 127.0.0.1:8081 [-k SUBSTRING]

What runs against the server:
- the stock `azure-ai-textanalytics` client (TextAnalyticsClient + AzureKeyCredential) on the
  Language API (`/language/:analyze-text`, api-version 2023-04-01 and 2022-05-01) and on the
  legacy Text Analytics paths (api_version "v3.1" and "v3.0"): language detection, sentiment with
  sentences, key phrases, entities, PII with redaction and category filters, per-document errors,
  the documents-per-request limit;
- `tritonclient.http` and `tritonclient.grpc` on the `language-detection` and `embeddings` v2
  models with a BYTES `TEXT` input;
- `POST /v1/embeddings` with urllib (and the `openai` package when it is installed);
- raw REST for what the SDK hides (413 for big bodies, unknown kinds, malformed JSON).

Every check prints one line (PASS/FAIL name: reason), then "N passed, N failed"; the exit status
is 1 if any check failed. When the language models are not served at all, it says so and stops.
"""

import argparse
import base64
import json
import struct
import sys
import traceback
import urllib.error
import urllib.request

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from azure.ai.textanalytics import PiiEntityCategory, TextAnalyticsClient
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import HttpResponseError

MODELS = ("language-detection", "sentiment", "key-phrases", "pii", "embeddings")

REFERENCE = (
    "Hi, I'm John Smith. Email me at john.smith@example.com or call 415-555-0132. "
    "I live at 221 Baker Street, Springfield, IL 62704."
)

LANGUAGES = [
    ("Hello world, this is a short test written in English.", "en"),
    ("Bonjour tout le monde, comment allez-vous aujourd'hui ?", "fr"),
    ("Hola a todos, espero que tengan un buen día en la oficina.", "es"),
    ("Guten Morgen, wie geht es dir heute? Das Wetter ist schön.", "de"),
    ("これは日本語で書かれた短い文章です。", "ja"),
]

CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


class Context:
    def __init__(self, http, grpc):
        self.http = http
        self.grpc = grpc
        self.endpoint = f"http://{http}"
        self.credential = AzureKeyCredential("any-key")
        self.client = TextAnalyticsClient(self.endpoint, self.credential)

    def client_for(self, api_version):
        return TextAnalyticsClient(self.endpoint, self.credential, api_version=api_version)


def expect(condition, message):
    if not condition:
        raise AssertionError(message)


def post_json(ctx, path, body, raw=None):
    """POSTs JSON (or raw bytes) and returns (status, parsed body or text)."""
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://{ctx.http}{path}",
        data=data,
        headers={"Content-Type": "application/json", "Ocp-Apim-Subscription-Key": "any-key"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        status, text = err.code, err.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def span(text, offset, length):
    return text[offset : offset + length]


# ------------------------------------------------------------------------------------------------
# Language API through the SDK.


def check_detect_language(client, show_stats):
    docs = [{"id": str(i), "text": t, "countryHint": "US"} for i, (t, _) in enumerate(LANGUAGES)]
    docs.append({"id": "none", "text": "12345 !!! 678"})
    results = client.detect_language(docs, show_stats=show_stats)
    expect(len(results) == len(docs), f"{len(results)} results for {len(docs)} documents")
    for (text, code), result in zip(LANGUAGES, results):
        expect(not result.is_error, f"{text!r}: {result}")
        lang = result.primary_language
        expect(lang.iso6391_name == code, f"{text!r}: detected {lang}")
        expect(isinstance(lang.name, str) and lang.name, f"no name: {lang}")
        expect(0.0 < lang.confidence_score <= 1.0, f"score {lang.confidence_score}")
        if show_stats:
            expect(result.statistics is not None, "no document statistics with show_stats")
            expect(result.statistics.character_count == len(text), f"{result.statistics}")
    unknown = results[-1].primary_language
    expect(unknown.iso6391_name == "(Unknown)", f"digits and punctuation: {unknown}")
    expect(unknown.confidence_score == 0.0, f"digits and punctuation: {unknown}")


@check
def detect_language_several_languages(ctx):
    check_detect_language(ctx.client, show_stats=True)


@check
def detect_language_api_version_2022_05_01(ctx):
    check_detect_language(ctx.client_for("2022-05-01"), show_stats=False)


def check_sentiment(client, v3_0=False):
    docs = [
        "I had a wonderful time. The food was excellent and the staff were friendly!",
        "The hotel was terrible. The room was dirty and the service was awful.",
        "The meeting is on Tuesday in room 204.",
    ]
    # v3.0 has no opinion mining: the SDK refuses the keyword there.
    options = {} if v3_0 else {"show_opinion_mining": False}
    results = client.analyze_sentiment(docs, language="en", **options)
    expected = ["positive", "negative", "neutral"]
    sentence_counts = [2, 2, 1]
    for text, result, label, count in zip(docs, results, expected, sentence_counts):
        expect(not result.is_error, f"{text!r}: {result}")
        expect(result.sentiment == label, f"{text!r}: {result.sentiment}, expected {label}")
        scores = result.confidence_scores
        total = scores.positive + scores.neutral + scores.negative
        expect(abs(total - 1.0) <= 0.02, f"document scores sum to {total}")
        expect(len(result.sentences) == count, f"{text!r}: {len(result.sentences)} sentences")
        for sentence in result.sentences:
            expect(sentence.sentiment in ("positive", "neutral", "negative"), f"{sentence}")
            s = sentence.confidence_scores
            expect(abs(s.positive + s.neutral + s.negative - 1.0) <= 0.02, f"{sentence}")
            expect(not sentence.mined_opinions, f"opinions without opinion mining: {sentence}")
            if not v3_0:
                expect(
                    span(text, sentence.offset, sentence.length) == sentence.text,
                    f"sentence offset {sentence.offset}/{sentence.length} does not give "
                    f"{sentence.text!r}",
                )
    expect(results[0].sentences[0].sentiment == "positive", f"{results[0].sentences[0]}")
    expect(results[1].sentences[0].sentiment == "negative", f"{results[1].sentences[0]}")


@check
def analyze_sentiment_with_sentences(ctx):
    check_sentiment(ctx.client)


def check_key_phrases(client):
    text = (
        "Cerulean is a self-hosted machine learning platform with a model registry, "
        "dataset versioning and fast inference serving."
    )
    result = client.extract_key_phrases([text])[0]
    expect(not result.is_error, f"{result}")
    expect(result.key_phrases, "no key phrases")
    expect(all(isinstance(p, str) and p for p in result.key_phrases), f"{result.key_phrases}")
    found = [p for p in result.key_phrases if p.lower() in text.lower()]
    expect(found, f"no key phrase appears in the text: {result.key_phrases}")


@check
def extract_key_phrases(ctx):
    check_key_phrases(ctx.client)


def categories(entities):
    return {e.category for e in entities}


def check_offsets(text, entities):
    for e in entities:
        expect(
            span(text, e.offset, e.length) == e.text,
            f"{e.category} at {e.offset}/{e.length} is {span(text, e.offset, e.length)!r}, "
            f"not {e.text!r}",
        )
        expect(0.0 <= e.confidence_score <= 1.0, f"{e}")


def check_entities(client, offsets=True):
    result = client.recognize_entities([REFERENCE])[0]
    expect(not result.is_error, f"{result}")
    found = categories(result.entities)
    for category in ("Person", "Email", "PhoneNumber"):
        expect(category in found, f"no {category} entity in {sorted(found)}")
    expect("USSocialSecurityNumber" not in found, f"PII-only category: {sorted(found)}")
    person = [e for e in result.entities if e.category == "Person"]
    expect(any(e.text == "John Smith" for e in person), f"persons: {person}")
    if offsets:
        check_offsets(REFERENCE, result.entities)


@check
def recognize_entities(ctx):
    check_entities(ctx.client)


def check_redaction(text, entities, redacted):
    expect(len(redacted) == len(text), f"redacted text has {len(redacted)} chars, not {len(text)}")
    masked = set()
    for e in entities:
        masked.update(range(e.offset, e.offset + e.length))
    for i, (original, shown) in enumerate(zip(text, redacted)):
        if i in masked:
            expect(shown == "*", f"char {i} ({original!r}) of an entity is not masked: {redacted!r}")
        else:
            expect(shown == original, f"char {i} ({original!r}) is not an entity but shows {shown!r}")


def check_pii(client):
    result = client.recognize_pii_entities([REFERENCE], language="en")[0]
    expect(not result.is_error, f"{result}")
    found = categories(result.entities)
    for category in ("Person", "Email", "PhoneNumber", "Address"):
        expect(category in found, f"no {category} entity in {sorted(found)}")
    by_category = {e.category: e for e in result.entities}
    expect(by_category["Person"].text == "John Smith", f"{by_category['Person']}")
    expect(by_category["Email"].text == "john.smith@example.com", f"{by_category['Email']}")
    expect("415-555-0132" in by_category["PhoneNumber"].text, f"{by_category['PhoneNumber']}")
    addresses = [e.text for e in result.entities if e.category == "Address"]
    expect(any("Baker Street" in a for a in addresses), f"addresses: {addresses}")
    check_offsets(REFERENCE, result.entities)
    check_redaction(REFERENCE, result.entities, result.redacted_text)
    expect("John Smith" not in result.redacted_text, result.redacted_text)
    expect("I live at" in result.redacted_text, result.redacted_text)

    only_email = client.recognize_pii_entities(
        [REFERENCE], categories_filter=[PiiEntityCategory.EMAIL]
    )[0]
    expect(categories(only_email.entities) == {"Email"}, f"{only_email.entities}")
    check_redaction(REFERENCE, only_email.entities, only_email.redacted_text)
    expect("John Smith" in only_email.redacted_text, only_email.redacted_text)


@check
def recognize_pii_entities_and_redaction(ctx):
    check_pii(ctx.client)


@check
def per_document_errors(ctx):
    results = ctx.client.detect_language(["", "Hello world, how are you today?"])
    expect(results[0].is_error, f"empty document: {results[0]}")
    expect(results[0].error.code == "InvalidDocument", f"{results[0].error}")
    expect("empty" in results[0].error.message, f"{results[0].error}")
    expect(not results[1].is_error, f"{results[1]}")

    too_long = "word " * 1100  # 5,500 characters
    results = ctx.client.analyze_sentiment(
        [
            {"id": "1", "text": too_long},
            {"id": "2", "text": "C'est une belle journée.", "language": "fr"},
            {"id": "3", "text": "What a lovely day."},
        ]
    )
    expect(results[0].is_error and results[0].error.code == "InvalidDocument", f"{results[0]}")
    expect("5120" in results[0].error.message, f"{results[0].error}")
    expect(results[1].is_error, f"{results[1]}")
    expect(results[1].error.code == "UnsupportedLanguageCode", f"{results[1].error}")
    expect(not results[2].is_error and results[2].sentiment == "positive", f"{results[2]}")


@check
def too_many_documents_is_invalid_document_batch(ctx):
    for call, limit in (
        (ctx.client.recognize_entities, 5),
        (ctx.client.recognize_pii_entities, 5),
        (ctx.client.analyze_sentiment, 10),
        (ctx.client.extract_key_phrases, 10),
    ):
        docs = [f"Document number {i}." for i in range(limit + 1)]
        try:
            call(docs)
        except HttpResponseError as err:
            expect(err.status_code == 400, f"{call.__name__}: status {err.status_code}")
            expect(err.error.code == "InvalidDocumentBatch", f"{call.__name__}: {err.error.code}")
            expect("Batch request contains too many records" in str(err), str(err))
        else:
            raise AssertionError(f"{call.__name__} accepted {limit + 1} documents")
        results = call(docs[:limit])
        expect(len(results) == limit and not any(r.is_error for r in results), f"{results}")


# ------------------------------------------------------------------------------------------------
# Legacy Text Analytics v3.1 / v3.0 through the SDK.


@check
def legacy_v3_1_paths(ctx):
    client = ctx.client_for("v3.1")
    check_detect_language(client, show_stats=True)
    check_sentiment(client)
    check_key_phrases(client)
    check_entities(client)
    check_pii(client)
    results = client.detect_language(["", "Hello there, friend."])
    expect(results[0].is_error and results[0].error.code == "InvalidDocument", f"{results[0]}")
    try:
        client.recognize_entities([f"doc {i}" for i in range(6)])
    except HttpResponseError as err:
        expect(err.status_code == 400 and err.error.code == "InvalidDocumentBatch", str(err))
    else:
        raise AssertionError("v3.1 accepted 6 entity documents")


@check
def legacy_v3_0_paths(ctx):
    client = ctx.client_for("v3.0")
    check_detect_language(client, show_stats=False)
    # The SDK drops v3.0 offsets (they were not in code points then).
    check_sentiment(client, v3_0=True)
    check_key_phrases(client)
    check_entities(client, offsets=False)


# ------------------------------------------------------------------------------------------------
# The v2 models through tritonclient.


def text_input(module, texts):
    array = np.array([[t.encode()] for t in texts], dtype=np.object_)
    tensor = module.InferInput("TEXT", list(array.shape), "BYTES")
    tensor.set_data_from_numpy(array)
    return tensor


@check
def tritonclient_language_detection(ctx):
    texts = [t for t, _ in LANGUAGES]
    codes = [c for _, c in LANGUAGES]
    for module, client in (
        (httpclient, httpclient.InferenceServerClient(ctx.http)),
        (grpcclient, grpcclient.InferenceServerClient(ctx.grpc)),
    ):
        metadata = client.get_model_metadata("language-detection")
        if module is httpclient:
            inputs = metadata["inputs"]
        else:
            inputs = [{"name": i.name, "datatype": i.datatype, "shape": list(i.shape)} for i in metadata.inputs]
        expect(inputs == [{"name": "TEXT", "datatype": "BYTES", "shape": [-1, 1]}], f"{inputs}")
        outputs = [module.InferRequestedOutput(n) for n in ("LANGUAGE", "NAME", "SCORE")]
        result = client.infer("language-detection", [text_input(module, texts)], outputs=outputs)
        got = [v.decode() for v in result.as_numpy("LANGUAGE").reshape(-1)]
        expect(got == codes, f"{module.__name__}: {got}")
        names = [v.decode() for v in result.as_numpy("NAME").reshape(-1)]
        expect(names[0] == "English" and names[1] == "French", f"{names}")
        scores = result.as_numpy("SCORE")
        expect(scores.shape == (len(texts), 1) and scores.dtype == np.float32, f"{scores.shape}")
        expect(bool(np.all((scores > 0) & (scores <= 1))), f"{scores}")


def v2_embeddings(ctx, texts):
    client = httpclient.InferenceServerClient(ctx.http)
    result = client.infer(
        "embeddings",
        [text_input(httpclient, texts)],
        outputs=[httpclient.InferRequestedOutput("EMBEDDING", binary_data=True)],
    )
    return result.as_numpy("EMBEDDING")


SIMILAR = ["The cat sits on the mat.", "A cat is sitting on a mat.", "Stock markets fell sharply today."]


@check
def tritonclient_embeddings(ctx):
    vectors = v2_embeddings(ctx, SIMILAR)
    expect(vectors.shape == (3, 384) and vectors.dtype == np.float32, f"{vectors.shape}")
    norms = np.linalg.norm(vectors, axis=1)
    expect(np.allclose(norms, 1.0, atol=1e-3), f"not L2-normalised: {norms}")
    close, far = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    expect(close > far + 0.2, f"similar sentences {close:.3f} vs unrelated {far:.3f}")


# ------------------------------------------------------------------------------------------------
# /v1/embeddings.


@check
def openai_embeddings_route(ctx):
    status, body = post_json(ctx, "/v1/embeddings", {"input": SIMILAR, "model": "all-MiniLM-L6-v2"})
    expect(status == 200, f"{status}: {body}")
    expect(body["object"] == "list" and body["model"] == "all-MiniLM-L6-v2", f"{body.keys()}")
    expect([d["index"] for d in body["data"]] == [0, 1, 2], "indices")
    expect(all(d["object"] == "embedding" for d in body["data"]), "objects")
    vectors = np.array([d["embedding"] for d in body["data"]], dtype=np.float32)
    expect(vectors.shape == (3, 384), f"{vectors.shape}")
    expect(np.allclose(vectors, v2_embeddings(ctx, SIMILAR), atol=1e-5), "differs from the v2 model")
    usage = body["usage"]
    expect(usage["prompt_tokens"] == usage["total_tokens"] >= 3 * 3, f"{usage}")

    status, single = post_json(
        ctx, "/v1/embeddings", {"input": SIMILAR[0], "model": "embeddings", "encoding_format": "base64"}
    )
    expect(status == 200, f"{status}: {single}")
    raw = base64.b64decode(single["data"][0]["embedding"])
    decoded = np.array(struct.unpack(f"<{len(raw) // 4}f", raw), dtype=np.float32)
    expect(np.allclose(decoded, vectors[0], atol=1e-6), "base64 differs from float")

    status, body = post_json(ctx, "/v1/embeddings", {"input": "hi", "model": "text-embedding-3-small"})
    expect(status == 404, f"unknown model: {status}")
    expect(body["error"]["code"] == "model_not_found" and body["error"]["param"] == "model", f"{body}")
    status, body = post_json(ctx, "/v1/embeddings", {"input": "hi", "model": "embeddings", "dimensions": 256})
    expect(status == 400 and body["error"]["param"] == "dimensions", f"{status}: {body}")
    status, body = post_json(ctx, "/v1/embeddings", {"input": "", "model": "embeddings"})
    expect(status == 400 and body["error"]["param"] == "input", f"{status}: {body}")

    try:
        import openai  # noqa: PLC0415 (only when the venv already has it)
    except ImportError:
        print("  (openai package not installed: checked with urllib only)")
        return
    client = openai.OpenAI(base_url=f"http://{ctx.http}/v1", api_key="any-key")
    response = client.embeddings.create(input=SIMILAR, model="all-MiniLM-L6-v2")
    got = np.array([d.embedding for d in response.data], dtype=np.float32)
    expect(np.allclose(got, vectors, atol=1e-5), "openai client embeddings differ")


# ------------------------------------------------------------------------------------------------
# Raw REST: what the SDK hides.


@check
def raw_rest_errors(ctx):
    path = "/language/:analyze-text?api-version=2023-04-01"
    big = {"kind": "LanguageDetection", "analysisInput": {"documents": [{"id": "1", "text": "x" * (1100 * 1024)}]}}
    status, body = post_json(ctx, path, big)
    expect(status == 413, f"1.1 MB body: {status}")
    expect(body["error"]["innererror"]["code"] == "InvalidDocumentBatch", f"{body}")

    status, body = post_json(ctx, path, {"kind": "EntityLinking", "analysisInput": {"documents": [{"id": "1", "text": "a"}]}})
    expect(status == 400 and body["error"]["innererror"]["code"] == "InvalidParameterValue", f"{status}: {body}")

    status, body = post_json(ctx, path, None, raw=b'{"kind": "LanguageDetection", "analysisInput": {"documents": [{"id": 7}]}}')
    expect(status == 400, f"malformed: {status}")
    message = body["error"]["innererror"]["message"]
    expect("analysisInput.documents[0].id" in message, message)

    status, body = post_json(ctx, "/language/:analyze-text?api-version=1999-01-01", {"kind": "LanguageDetection"})
    expect(status == 400 and "2023-04-01" in body["error"]["innererror"]["message"], f"{status}: {body}")

    ids = [{"id": "same", "text": "a"}, {"id": "same", "text": "b"}]
    status, body = post_json(ctx, path, {"kind": "SentimentAnalysis", "analysisInput": {"documents": ids}})
    expect(status == 400 and "duplicated Ids" in body["error"]["innererror"]["message"], f"{status}: {body}")

    utf16 = {
        "kind": "PiiEntityRecognition",
        "parameters": {"stringIndexType": "Utf16CodeUnit"},
        "analysisInput": {"documents": [{"id": "1", "text": "\U0001F600 Email me at john.smith@example.com"}]},
    }
    status, body = post_json(ctx, path, utf16)
    expect(status == 200, f"{status}: {body}")
    emails = [e for e in body["results"]["documents"][0]["entities"] if e["category"] == "Email"]
    # The emoji is one code point but two UTF-16 units.
    expect(emails and emails[0]["offset"] == 15, f"UTF-16 offset of the e-mail: {emails}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", required=True)
    parser.add_argument("--grpc", required=True)
    parser.add_argument("-k", default="", help="run only checks whose name contains this")
    args = parser.parse_args()

    ready = httpclient.InferenceServerClient(args.http)
    missing = [m for m in MODELS if not ready.is_model_ready(m)]
    if missing:
        print(
            f"FAIL models_ready: `cerulean up` does not serve {', '.join(missing)} "
            "(the language pipelines are not wired into `up`, or their models are not pulled)"
        )
        print("0 passed, 1 failed")
        return 1
    print("PASS models_ready")

    ctx = Context(args.http, args.grpc)
    passed = failed = 0
    for fn in CHECKS:
        if args.k not in fn.__name__:
            continue
        try:
            fn(ctx)
        except Exception as err:  # noqa: BLE001 (report every failure, keep going)
            failed += 1
            print(f"FAIL {fn.__name__}: {type(err).__name__}: {err}")
            traceback.print_exc(limit=3, file=sys.stdout)
        else:
            passed += 1
            print(f"PASS {fn.__name__}")
    print(f"{passed + 1} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Redaction: a corpus of secret shapes, each planted in the ways it reaches perfdoctor (argv,
exception messages), must vanish; ordinary training command lines must stay as they are.

Secret-shaped test values are assembled at run time from a prefix and a random body, so that
this file itself holds nothing a secret scanner would flag."""

from __future__ import annotations

import random
import string

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from perfdoctor.redact import MASK, is_secret_name, looks_random, redact_argv, redact_text

RNG = random.Random(14)
ALNUM = string.ascii_letters + string.digits


def body(n: int, alphabet: str = ALNUM) -> str:
    """n random characters of alphabet, with each of its classes (upper, lower, digit) present."""
    classes = [test for test in (str.isupper, str.islower, str.isdigit) if any(map(test, alphabet))]
    while True:
        text = "".join(RNG.choice(alphabet) for _ in range(n))
        if all(any(map(test, text)) for test in classes):
            return text


UPPER_DIGITS = string.ascii_uppercase + string.digits
HEX = "0123456789abcdef"

# (shape, the secret) -- by the formats their issuers publish.
KEYS_BY_FORMAT = [
    ("AWS access key id", "AKIA" + "".join(RNG.choice(UPPER_DIGITS) for _ in range(16))),
    ("AWS temporary key id", "ASIA" + "".join(RNG.choice(UPPER_DIGITS) for _ in range(16))),
    ("Google API key", "AIza" + body(35, ALNUM + "_-")),
    ("Google OAuth token", "ya29." + body(60, ALNUM + "_-")),
    ("Google OAuth client secret", "GOCSPX-" + body(28)),
    ("Azure AD client secret", body(3) + "7Q~" + body(34, ALNUM + "_~.-")),
    ("GitHub classic token", "ghp_" + body(36)),
    ("GitHub app token", "ghs_" + body(36)),
    ("GitHub fine-grained token", "github_pat_" + body(22) + "_" + body(59)),
    ("GitLab token", "glpat-" + body(20)),
    ("Slack bot token", "xox" + "b-" + "".join(RNG.choice(string.digits) for _ in range(12)) + "-" + body(24)),
    ("Slack app token", "xa" + "pp-1-" + body(11) + "-" + body(40)),
    ("OpenAI key", "sk-" + body(20) + "T3BlbkFJ" + body(20)),
    ("OpenAI project key", "sk-" + "proj-" + body(74, ALNUM + "_-") + "A"),
    ("Anthropic key", "sk-" + "ant-api03-" + body(93, ALNUM + "_-") + "AA"),
    ("Stripe secret key", "sk" + "_live_" + body(24)),
    ("Hugging Face token", "hf_" + body(34, string.ascii_letters)),
    ("npm token", "npm_" + body(36)),
    ("PyPI token", "pypi-AgEIcHlwaS5vcmc" + body(60, ALNUM + "_-")),
    ("Databricks token", "dapi" + "".join(RNG.choice(HEX) for _ in range(32))),
    ("SendGrid key", "SG." + body(22) + "." + body(43)),
    ("Telegram bot token", "123456789:AA" + body(33)),
    ("JWT", "eyJhbGciOiJIUzI1NiJ9." + "eyJzdWIiOiIxMjM0NTY3ODkwIn0." + body(43, ALNUM + "_-")),
]
PRIVATE_KEY = "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(body(64, ALNUM + "+/") for _ in range(4)) + "\n-----END RSA PRIVATE KEY-----"
HEX_KEY = "".join(RNG.choice(HEX) for _ in range(40))  # a W&B-style key: only a name can reveal it
WORD = body(12)  # a short secret of no known shape: only its context reveals it


def assert_gone(secret: str, text: str) -> None:
    assert secret not in text, text
    for part in secret.replace("\n", " ").split():
        if len(part) >= 8:
            assert part not in text, text


@pytest.mark.parametrize("shape, secret", KEYS_BY_FORMAT, ids=[shape for shape, _ in KEYS_BY_FORMAT])
@pytest.mark.parametrize("template", [
    "{s}",
    "token {s} rejected",
    "invalid credentials for {s}: 401",
    "config={{'client': '{s}'}}",
    "https://api.example.com/v1/models?key={s}",
    "export THING={s}",
])
def test_keys_of_known_formats_are_masked_anywhere_in_text(shape, secret, template):
    assert_gone(secret, redact_text(template.format(s=secret)))


@pytest.mark.parametrize("shape, secret", KEYS_BY_FORMAT, ids=[shape for shape, _ in KEYS_BY_FORMAT])
def test_keys_of_known_formats_are_masked_as_arguments(shape, secret):
    for argv in (["--resume", secret], [f"--x={secret}"], [secret], [f"model.client={secret}"]):
        assert_gone(secret, " ".join(redact_argv(argv)))


ISSUE_FORMS = [
    (["--key", WORD], ["--key", MASK]),
    (["-p", WORD], ["-p", MASK]),
    (["--pass", WORD], ["--pass", MASK]),
    (["--pass=" + WORD], ["--pass=" + MASK]),
    (["--api-key", WORD, "--lr", "3e-4"], ["--api-key", MASK, "--lr", "3e-4"]),
    ([f"--hf_token={WORD}"], [f"--hf_token={MASK}"]),
    (["--hfToken", WORD], ["--hfToken", MASK]),
    (["--password", WORD, "--epochs", "2"], ["--password", MASK, "--epochs", "2"]),
    (["--url", f"https://blob.example.com/x.tar?token={WORD}&sig={WORD}"], ["--url", f"https://blob.example.com/x.tar?token={MASK}&sig={MASK}"]),
    ([f'--headers={{"Authorization": "Bearer {WORD}"}}'], [f'--headers={{"Authorization": "{MASK}"}}']),
    (["--header", f"Authorization: Bearer {WORD}"], ["--header", f"Authorization: {MASK}"]),
    (["--header", f"X-Api-Key: {WORD}"], ["--header", f"X-Api-Key: {MASK}"]),
    (["--notify", f"https://hooks.slack.com/services/T0{WORD[:7]}/B0{WORD[:7]}/{WORD}"], ["--notify", f"https://hooks.slack.com/services/{MASK}"]),
    (["--notify", f"https://discord.com/api/webhooks/1234567890/{WORD}"], ["--notify", f"https://discord.com/api/webhooks/{MASK}"]),
    (["--notify", f"https://acme.webhook.office.com/webhookb2/{WORD}@{WORD}/IncomingWebhook/{WORD}"], ["--notify", f"https://acme.webhook.office.com/webhookb2/{MASK}"]),
    (["--cookie", f"session={WORD}"], ["--cookie", MASK]),
    ([f"--cookie=session={WORD}; theme=dark"], [f"--cookie={MASK}"]),
    (["--data", f"s3://user:{WORD}@bucket/train"], ["--data", f"s3://user:{MASK}@bucket/train"]),
    ([f"model.api_key={WORD}"], [f"model.api_key={MASK}"]),
    ([f"+wandb.apiKey={WORD}"], [f"+wandb.apiKey={MASK}"]),
    ([f"DB_PASSWORD={WORD}"], [f"DB_PASSWORD={MASK}"]),
]


@pytest.mark.parametrize("argv, expected", ISSUE_FORMS)
def test_the_forms_from_the_issue(argv, expected):
    assert redact_argv(argv) == expected


MESSAGES = [
    (f"could not connect to postgresql://admin:{WORD}@db.internal:5432/prod", f"postgresql://admin:{MASK}@db.internal:5432/prod"),
    (f"redis://:{WORD}@cache:6379/0 refused the connection", f"redis://:{MASK}@cache:6379/0"),
    (f"mongodb+srv://svc:{WORD}@cluster0.example.net/db?retryWrites=true", f"mongodb+srv://svc:{MASK}@cluster0.example.net/db?retryWrites={MASK}"),
    (f"Driver={{ODBC}};Server=db;Uid=sa;Pwd={WORD};", f"Pwd={MASK};"),
    (f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={WORD}==;EndpointSuffix=core.windows.net", f"AccountKey={MASK};"),
    (f"Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=root;SharedAccessKey={WORD}=", f"SharedAccessKey={MASK}"),
    (f"aws_secret_access_key = {HEX_KEY}", f"aws_secret_access_key = {MASK}"),
    (f"WANDB_API_KEY={HEX_KEY}", f"WANDB_API_KEY={MASK}"),
    (f"{{'password': '{WORD}', 'user': 'bob'}}", f"{{'password': '{MASK}', 'user': 'bob'}}"),
    (f'{{"client_secret": "{WORD}", "client_id": "abc"}}', f'{{"client_secret": "{MASK}", "client_id": "abc"}}'),
    (f"401 Unauthorized: Authorization: Basic {WORD}==", f"Authorization: {MASK}"),
    (f"request failed (Bearer {WORD})", f"(Bearer {MASK})"),
    (f"Cookie: sessionid={WORD}; csrftoken={WORD}", f"Cookie: {MASK}"),
    (f"Set-Cookie: sid={WORD}; Path=/; HttpOnly", f"Set-Cookie: {MASK}"),
    (f"https://x-access-token:{WORD}@github.com/org/repo.git", f"https://x-access-token:{MASK}@github.com/org/repo.git"),
    (f"https://{HEX_KEY}@o1.ingest.sentry.io/42", None),
    (f"subprocess failed: train.py --epochs 3 --api-token {WORD} --lr 0.1", f"--api-token {MASK} --lr 0.1"),
    (f"bad key: {PRIVATE_KEY} (expected PEM)", f"bad key: {MASK} (expected PEM)"),
    ('{"type": "service_account", "private_key": "' + PRIVATE_KEY.replace("\n", "\\n") + '\\n"}', None),
    (f"signed URL expired: https://storage.googleapis.com/b/o?X-Goog-Credential=svc%40p.iam&X-Goog-Signature={HEX_KEY}", f"X-Goog-Signature={MASK}"),
    (f"https://b.s3.amazonaws.com/k?X-Amz-Security-Token={WORD}&X-Amz-Signature={HEX_KEY}", f"X-Amz-Security-Token={MASK}&X-Amz-Signature={MASK}"),
    (f"https://acct.blob.core.windows.net/c/b?sv=2022-11-02&se=2030&sp=r&sig={WORD}%3D", f"sig={MASK}"),
    (f"oauth callback https://app.example.com/cb#access_token={WORD}&token_type=bearer", f"#access_token={MASK}&token_type={MASK}"),
]


@pytest.mark.parametrize("message, expected", MESSAGES)
def test_secrets_in_exception_messages(message, expected):
    redacted = redact_text(message)
    for secret in (WORD, HEX_KEY, PRIVATE_KEY):
        if secret in message:
            assert_gone(secret, redacted)
    if expected is not None:
        assert expected in redacted


ORDINARY = [
    ["--lr", "3e-4", "--weight-decay=1e-2", "--betas", "0.9,0.999", "--epochs", "90", "--seed", "1234"],
    ["--model", "meta-llama/Llama-3.1-8B-Instruct", "--tokenizer", "gpt2", "--max-token-len", "512", "--num-tokens=2048"],
    ["--model", "mistralai/Mixtral-8x7B-Instruct-v0.1", "--revision", "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"],
    ["--output_dir", "/scratch/ResNet50_ImageNet_Epoch90_Acc76_final", "--resume", "ckpt/epoch_12-step_48000.pt"],
    ["--data", "/data/ImageNet2012/train/n01440764/n01440764_10026.JPEG", "--val", "~/datasets/coco/val2017"],
    ["--data", "s3://bucket/path/to/shard-{000000..000099}.tar", "--cache", "hf_cache/models--bert-base-uncased"],
    ["--run-id", "8f3a2b1c9d7e6f5a4b3c2d1e0f9a8b7c", "--uuid", "123e4567-e89b-12d3-a456-426614174000"],
    ["--hash", "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
    ["trainer.max_steps=1000", "+experiment=vit_base_patch16_224", "model=Qwen2-VL-72B-Instruct-AWQ", "optimizer.lr=3e-4"],
    ["--key-file", "/etc/ssl/key.pem", "--token-file", "~/.cache/huggingface/token", "--secret-name", "prod/db"],
    ["--keyboard", "--token", "--epochs", "3", "--passes", "4", "--author", "me", "--bypass-cache", "--monkey-patch"],
    ["--model", "CLIP-ViT-H-14-laion2B-s32B-b79K", "--model2", "EleutherAI/gpt-neox-20b", "--sd", "sd_xl_base_1.0_0.9vae"],
    ["--eval-url", "https://pytorch.org/docs/stable/index.html", "--", "--keyboard"],
    ["--batch-size", "64", "data/train", "--", "--keyboard", "-v", "-"],
]


@pytest.mark.parametrize("argv", ORDINARY)
def test_ordinary_command_lines_are_untouched(argv):
    assert redact_argv(argv) == argv


@pytest.mark.parametrize("message", [
    "KeyError: 'weight'",
    'Missing key(s) in state_dict: "fc.weight", "fc.bias". Unexpected key(s) in state_dict: "head.weight".',
    "RuntimeError: CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 79.15 GiB total capacity)",
    "ValueError: Expected input batch_size (64) to match target batch_size (32).",
    "RuntimeError: mat1 and mat2 shapes cannot be multiplied (64x512 and 256x10)",
    "FileNotFoundError: [Errno 2] No such file or directory: '/data/ImageNet2012/train'",
    "OSError: meta-llama/Llama-3.1-8B-Instruct is not a local folder and is not a valid model identifier",
    "the token embeddings have 50257 rows; max_tokens=2048",
    "password authentication failed for user \"trainer\"",
])
def test_ordinary_error_messages_are_untouched(message):
    assert redact_text(message) == message


@pytest.mark.parametrize("name, secret", [
    ("--api-key", True), ("--apiKey", True), ("HF_TOKEN", True), ("x-api-key", True), ("Authorization", True),
    ("client_secret", True), ("--db-password", True), ("accesstoken", True), ("session", True), ("AccountKey", True),
    ("--webhook-url", True), ("--pass", True), ("--key", True), ("Pwd", True),
    ("--tokenizer", False), ("--max-token-len", False), ("--key-file", False), ("KeyError", False), ("--keyboard", False),
    ("--passes", False), ("--author", False), ("--lr", False), ("--secret-name", False), ("--num-tokens", False),
])
def test_secret_names(name, secret):
    assert is_secret_name(name) is secret


@pytest.mark.parametrize("alphabet, length, share", [
    (ALNUM, 32, 0.97), (ALNUM, 40, 0.98), (ALNUM + "+/", 40, 0.95), (ALNUM + "-_", 43, 0.95), (ALNUM + "+/", 88, 0.99),
])
def test_keys_of_no_known_format_are_caught_by_how_random_they_look(alphabet, length, share):
    """AWS secret keys, Azure storage keys, most vendors' API keys: random strings. The fallback
    catches nearly all of them, wherever they stand (measured share over 400 keys)."""
    rng = random.Random(length)
    keys = ["".join(rng.choice(alphabet) for _ in range(length)) for _ in range(400)]
    caught = [key for key in keys if key not in redact_text(f"failed with {key} (401)")]
    assert len(caught) / len(keys) >= share


def test_random_looking_text():
    for name in ("ResNet50_ImageNet_Epoch90_Acc76_final", "Meta-Llama-3-70B-Instruct-GPTQ-4bit-128g", HEX_KEY,
                 "checkpoint_Epoch12_Step48000_ValLoss0p123", "BertForSequenceClassification"):
        assert not looks_random(name), name


# ------------------------------------------------------------------ properties

secret_bodies = st.text(ALNUM, min_size=12, max_size=40).filter(
    lambda s: any(c.isupper() for c in s) and any(c.islower() for c in s) and any(c.isdigit() for c in s)
)
secret_names = st.sampled_from(["--api-key", "--token", "--password", "--pass", "--auth-token", "--secret", "--hf-token", "--db-password", "--cookie", "-p"])


@settings(max_examples=200, deadline=None)
@given(secret_names, secret_bodies, st.booleans(), st.lists(st.sampled_from(ORDINARY[0] + ORDINARY[1]), max_size=6))
def test_a_secret_option_value_never_survives(name, secret, joined, around):
    argv = [*around, f"{name}={secret}"] if joined else [*around, name, secret]
    redacted = redact_argv(argv)
    assert len(redacted) == len(argv)
    assert secret not in " ".join(redacted)
    assert redacted[: len(around)] == around


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["password", "api_key", "token", "secret", "auth", "apiKey", "client_secret", "PWD"]), secret_bodies,
       st.sampled_from(["{k}={s}", "{k}: {s}", '"{k}": "{s}"', "'{k}': '{s}'", "{k} = {s};", "--{k} {s}"]),
       st.text(string.printable, max_size=30), st.text(string.printable, max_size=30))
def test_a_named_secret_in_free_text_never_survives(key, secret, form, before, after):
    assume(secret not in before and secret not in after)
    text = f"{before} {form.format(k=key, s=secret)} {after}"
    assert secret not in redact_text(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_redaction_is_total_and_idempotent(text):
    once = redact_text(text)
    assert redact_text(once) == once
    assert redact_argv(text.split(" ")) == redact_argv(redact_argv(text.split(" ")))


def test_long_text_is_quick():
    import time

    text = ("word " * 50_000) + "password=" + WORD + " " + ("a" * 100_000) + " -----BEGIN PRIVATE KEY-----" + "x" * 100_000
    start = time.perf_counter()
    redacted = redact_text(text)
    assert time.perf_counter() - start < 2
    assert WORD not in redacted


def test_a_secret_option_followed_by_another_option():
    assert redact_argv(["--token", "--epochs", "3"]) == ["--token", "--epochs", "3"]  # a flag after all
    assert redact_argv(["--password", "-dash-first"]) == ["--password", MASK]  # a value may start with "-"
    assert redact_argv(["-p", "-v"]) == ["-p", MASK]

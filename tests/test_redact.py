from perfdoctor.redact import MASK, redact_argv


def test_secret_options_lose_their_values():
    argv = ["--lr", "3e-4", "--api-key", "sk-123", "--hf_token=abc", "--password", "pw", "--epochs", "2"]
    assert redact_argv(argv) == ["--lr", "3e-4", "--api-key", MASK, f"--hf_token={MASK}", "--password", MASK, "--epochs", "2"]


def test_credentials_in_urls_are_masked():
    assert redact_argv(["--data", "s3://user:secretpass@bucket/train"]) == ["--data", f"s3://user:{MASK}@bucket/train"]


def test_ordinary_arguments_are_untouched():
    argv = ["--batch-size", "64", "data/train", "--", "--keyboard"]
    assert redact_argv(argv) == argv

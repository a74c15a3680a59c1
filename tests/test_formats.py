from sizebench.engines import formats


def test_dolly_format_matches_dolly_15k():
    rendered = formats.dolly("What is the highest mountain in Japan?")
    assert rendered.text == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request."
        "\n\n### Instruction:\nWhat is the highest mountain in Japan?\n\n### Response:\n"
    )
    assert rendered.stop_strings == ("### End",)


def test_dolly_with_context_adds_input_block():
    text = formats.dolly("Summarise.", "Mount Fuji is 3,776 m high.").text
    assert "### Instruction:\nSummarise.\n\nInput:\nMount Fuji is 3,776 m high.\n\n### Response:\n" in text


def test_plain_and_cut_at_stop():
    rendered = formats.plain("What is the capital of France?")
    assert rendered.text == "Question: What is the capital of France?\nAnswer:"
    assert formats.cut_at_stop(" Paris\nQuestion: and", rendered.stop_strings) == "Paris"
    assert formats.cut_at_stop("Fuji. ### End more", ("### End",)) == "Fuji."


def test_single_token_stop_string_becomes_a_stop_id(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    ids = formats.stop_token_ids(tok, ("### End",))
    assert ids == sorted({tok.eos_token_id, tok.convert_tokens_to_ids("### End")})


def test_chat_format_uses_the_tokenizer_template():
    class Tok:
        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            assert add_generation_prompt and not tokenize
            return f"<user>{messages[0]['content']}</user><bot>"

    rendered = formats.chat("Hi?", None, Tok())
    assert rendered.text == "<user>Hi?</user><bot>" and not rendered.add_special_tokens

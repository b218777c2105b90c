from mlm_mia.data.sentences import clean_sentences, normalize, split_rules, text_hash


def test_rules_keep_placeholders_and_abbreviations_whole():
    text = ("Seen by Dr. [**Last Name (STitle) 12. 3**] on [**2151-7-16**]. He took 5 mg p.o. "
            "Then home.\n\nHOSPITAL COURSE: fine! Hemoglobin was 12.1. Next.")
    assert [normalize(s) for s in split_rules(text)] == [
        "Seen by Dr. [**Last Name (STitle) 12. 3**] on [**2151-7-16**].",
        "He took 5 mg p.o.",
        "Then home.",
        "HOSPITAL COURSE: fine!",
        "Hemoglobin was 12.1.",
        "Next.",
    ]


def test_rules_split_list_items_and_keep_closing_quotes():
    text = 'Medications:\n- Aspirin 81 mg\n2. Lisinopril 10 mg\nsaid "stop." Then left.'
    assert [normalize(s) for s in split_rules(text)] == [
        "Medications:", "- Aspirin 81 mg", '2. Lisinopril 10 mg said "stop."', "Then left."]


def test_rules_do_not_split_before_lower_case():
    assert len(split_rules("dose was 5 mg. then stopped.")) == 1


def test_clean_sentences_collapse_whitespace_and_drop_short():
    text = "short one\n  a   long enough\tsentence here  \nx"
    assert list(clean_sentences(text, "lines", 20)) == ["a long enough sentence here"]


def test_text_hash_is_a_fixed_64_bit_value():
    # blake2b, not Python's hash(), which changes with PYTHONHASHSEED
    assert text_hash("Patient resting comfortably.") == 17193455698201368281

#!/usr/bin/env python3
"""make_tokenizer_fixtures.py — reference token ids from Hugging Face's BERT tokenizer, the
reference for tests/tokenizer_test.cc, and the Unicode tables of src/text/tokenizer.c.

Writes, under tests/fixtures/:
  tokenizer_cases.jsonl       first line: {"meta": {...}} (reference library and versions,
                              model, max length as sentence-transformers sees it); then one
                              line per case: {"kind", "text" | "hex", "ids", ["truncated"]}.
                              "hex" (the UTF-8 bytes) replaces "text" when the text holds a
                              NUL, which cJSON strings cannot carry. ids are
                              BertTokenizerFast(text, truncation=True, max_length=...) at the
                              model's max length; "truncated" maps smaller max lengths
                              ("16", "3", "2") to the ids at those.
  tokenizer_codepoints.txt    every code point c (surrogates aside) tokenized as "a" c "b",
                              without [CLS]/[SEP], run-length encoded: one line per run of
                              consecutive code points with equal ids: "first count ids...",
                              hex first and count, decimal ids.
  tokenizer_options.jsonl     other tokenizer_config.json settings (no lower-casing, no
                              accent stripping, no CJK spacing): one line per setting,
                              {"config", "ids"}, ids of the hard strings of at most 300 chars
                              (in tokenizer_cases.jsonl's order) from a folder holding only
                              vocab.txt and that tokenizer_config.json (max length 512).

Cases: every title, abstract and query of tests/data at the model's max length, and
several hundred hard strings (accents, CJK, controls, odd whitespace, emoji, long words,
special-token text, ...); the hard strings and 20 abstracts also at max lengths 16, 3, 2.

The reference is transformers' BertTokenizerFast loaded from the model folder when
transformers is importable, else tokenizers.Tokenizer.from_file(tokenizer.json) with
[CLS]/[SEP] and truncation done the same way; both run the same Rust pipeline. The meta
line says which.

--update-tables rewrites the generated block of src/text/tokenizer.c: the character classes
of Hugging Face's BertNormalizer and BertPreTokenizer, probed code point by code point
from `tokenizers` (they come from older Unicode tables than utf8proc's), and where HF's
NFD and lower-casing differ from the installed utf8proc's (read through ctypes).

Run from the repository root:
  python3 tools/make_tokenizer_fixtures.py [--model models/all-MiniLM-L6-v2]
  python3 tools/make_tokenizer_fixtures.py --update-tables
"""
import argparse
import json
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
DATA = os.path.join(ROOT, "tests", "data")
TOKENIZER_C = os.path.join(ROOT, "src", "text/tokenizer.c")

LONG_WORD = "supercalifragilisticexpialidocious"
SMALL_MAX_LENGTHS = (16, 3, 2)

# Hard strings, written out one by one.
HARD_TEXTS = [
    # empty and whitespace-only
    "", " ", "  ", "\t", "\n", "\r\n", " \t\n\r ", "\u00a0", "\u3000", "\u2003", "\u200b",
    "\ufeff", "\u00a0\u2003\u3000\u200b\ufeff", "\u0085", "\u2028\u2029", "\u000b\u000c",
    # plain English and punctuation
    "Hello, World!", "hello world", "HELLO WORLD", "Hello   world", "don't stop", "rock'n'roll",
    "e.g. i.e. etc.", "U.S.A.", "C++ and C# and F#", ".NET node.js", "--verbose -v", "#hashtag",
    "@mention", "snake_case_name", "camelCaseName", "HTML <b>bold</b> &amp; <i>it</i>",
    "a/b\\c|d", "\"quoted\" 'single'", "\u2018smart\u2019 \u201cquotes\u201d",
    "em\u2014dash en\u2013dash", "wait\u2026", "\u00a7 \u00b6 \u2020 \u2021", "\u00a9\u00ae\u2122",
    "25\u00b0C", "5 \u00b5m", "\u2126 \u03a9", "\u00bfQu\u00e9? \u00a1S\u00ed!", "(nested [brackets {here}])",
    "~tilde^caret`backtick", "100%", "a+b=c", "x<y>z", "!!!???", "...", "----", "____", "''''",
    "a-b-c-d-e-f-g", "well-known state-of-the-art", "'tis", "o'clock", "1990s", "80's",
    # numbers
    "3.14159", "1,000,000", "$12.50", "\u20ac99,99", "\u00a3100", "\u00a5500", "10^-3", "1e-10",
    "2024-01-15", "12:30pm", "+1 (555) 123-4567", "\u00bd \u00bc \u00be", "\u2460\u2461\u2462",
    "x\u00b2 + y\u00b3", "\u0663\u0664\u0665", "\u0967\u0968\u0969", "\uff11\uff12\uff13",
    "0x1F600", "v1.2.3-rc.1", "IPv4 192.168.0.1", "3/4 cup", "50\u201360%", "#1", "No. 5", "\u2116 5",
    "1st 2nd 3rd 4th", "MMXXIV", "\u216b o'clock", "0.000001", "-42", "\u221242",
    # URLs, e-mails, paths
    "https://example.com/path?q=1&r=2#frag", "http://www.example.org/index.html",
    "user.name+tag@example.co.uk", "ftp://files.example.net/pub/file.tar.gz",
    "www.google.com", "C:\\Program Files\\App\\app.exe", "/usr/local/bin/python3",
    "https://en.wikipedia.org/wiki/BERT_(language_model)", "mailto:someone@example.com",
    "https://xn--n3h.example/\u2603", "git@github.com:owner/repo.git",
    # accents and combining marks
    "caf\u00e9", "cafe\u0301", "Cr\u00e8me br\u00fbl\u00e9e", "na\u00efve r\u00e9sum\u00e9",
    "\u00c5ngstr\u00f6m", "A\u030angstro\u0308m", "\u212b", "\u212a", "a\u0301\u0323\u0308",
    "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034dA\u036b\u0357\u0334\u0362\u0335\u031c\u0330\u0354L\u0368\u0367\u0369\u0358\u0320G\u0311\u0357\u030e\u0305\u035b\u0341\u0334\u033b\u0348\u034d\u0354\u0339O\u0342\u030c\u030c\u0358\u0328\u0335\u0339\u033b\u031d\u0333",
    "\u01c5 \u01c4 \u01c6", "\u1e9b\u0323", "\u0344", "\u0340\u0341", "\u00f1 n\u0303 \u00d1",
    "\u0107\u010d\u0111\u0161\u017e", "\u0142\u00f3d\u017a", "\u0149", "\u1f80\u1f88", "\u0390\u03b0",
    "\u0628\u0650\u0633\u0652\u0645\u0650", "\u05e9\u05b8\u05c1\u05dc\u05d5\u05b9\u05dd",
    "\u0915\u094d\u0937", "\u0e01\u0e34\u0e19", "\u1100\u1161\u11a8", "\u0301start", "end\u0301",
    "\u0301", "\u0308\u0308\u0308", " \u0301 ", "a \u0301b",
    # CJK and the edges of HF's CJK ranges
    "\u4e2d\u6587\u5206\u8bcd\u6d4b\u8bd5", "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8",
    "BERT\u662f\u4e00\u4e2a\u6a21\u578b", "\u8c48", "\uf900", "\ufa6d", "\U00020000", "\U0002a6df",
    "\U0002b81f", "\U0002b820", "\U0002b91f", "\U0002b920", "\U0002ceaf", "\U0002ceb0", "\u3400",
    "\u4dbf", "\u4dc0", "\u9fff", "\ua000", "\U0002f800", "\U0002fa1d", "\U00030000",
    "abc\u4e2ddef", "\u4e2d,\u6587.", "\u3001\u3002\u300c\u300d", "\u2f00\u2e80",
    # Hangul, kana, other East Asian
    "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8", "\uac00\ud7a3", "\u3131\u314f", "\u1100\u1161",
    "\u30ab\u30bf\u30ab\u30ca \u3072\u3089\u304c\u306a", "\uff76\uff80\uff76\uff85",
    "\u30d1\u30d3\u30d7\u30da\u30dd", "\u304c\u304e\u3050", "\u30fc\u30fb", "\u3094\u30f4",
    # emoji and other astral characters
    "\U0001f600", "\U0001f44d\U0001f3fd", "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466",
    "\U0001f1fa\U0001f1f8", "1\ufe0f\u20e3", "\u2764\ufe0f", "\U0001f97a", "\U0001fae0",
    "I \u2764 NY", "good\U0001f44dgood", "\U0001f3f3\ufe0f\u200d\U0001f308", "\U0001d538\U0001d553\U0001d49e",
    "\U00010400\U00010428", "\U0001e900\U0001e922", "\U000104b0\U000104d8", "\U00016e40\U00016e60",
    "\U000118a0\U000118c0", "\U0001f9d1\u200d\U0001f4bb", "\U0001f0a1", "\U0001f004", "\U00010000",
    # control characters and NUL
    "\x00", "a\x00b", "\x00\x00\x00", "\x01\x02\x03", "\x7f", "\x80\x9f", "\x1b[31mred\x1b[0m",
    "tab\there", "line\nbreak", "cr\rhere", "\x1c\x1d\x1e\x1f", "a\x08b", "\ufffd", "a\ufffdb",
    "\ue000\uf8ff", "\U000f0000", "\U0010fffd", "\U000e0001\U000e0041", "\u00ad", "soft\u00adhyphen",
    "zero\u200bwidth", "zw\u200cnj\u200dj", "word\u2060joiner", "\u061c", "\u180e", "\u202a\u202e",
    "\u2066\u2069", "\ufff9\ufffa\ufffb", "\u0600\u0605", "\u06dd", "\U000110bd", "\U0001d173",
    "\u0378", "\u0890", "\U000110cd", "\U00013430", "\ufdd0", "\uffff", "\U0001ffff", "\U000e0100",
    # whitespace variety
    "a\u00a0b", "a\u2003b", "a\u3000b", "a\u1680b", "a\u2000b\u200ac", "a\u2028b\u2029c",
    "a\u202fb", "a\u205fb", "a\u0085b", "a\u000bb\u000cc", "a\u001fb", "a\u180eb",
    # long words
    "a" * 99, "a" * 100, "a" * 101, "a" * 300, "\u00e9" * 100, "\u00e9" * 101,
    "e\u0301" * 100, "e\u0301" * 101, "x" * 99 + "\u00e9", "\u4e2d" * 120,
    LONG_WORD * 3, LONG_WORD * 6, "ab" * 50, "ab" * 51, "\u0915" * 101, "\U0001f600" * 101,
    "A" * 100 + "!", "A" * 101 + "!",
    "http://example.com/" + "verylongpathsegment" * 8,
    "pneumonoultramicroscopicsilicovolcanoconiosis", "antidisestablishmentarianism",
    "Donaudampfschifffahrtsgesellschaftskapit\u00e4n",
    # scripts
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440!", "\u0401\u043b\u043a\u0430 \u0451\u0436",
    "\u039a\u03b1\u03bb\u03b7\u03bc\u03ad\u03c1\u03b1 \u03ba\u03cc\u03c3\u03bc\u03b5",
    "\u039f\u0394\u03a5\u03a3\u03a3\u0395\u03a5\u03a3", "\u03c3\u03c2\u03a3",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd", "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
    "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e0a\u0e32\u0e27\u0e42\u0e25\u0e01",
    "\u0532\u0561\u0580\u0565\u0582", "\u10d2\u10d0\u10db\u10d0\u10e0\u10ef\u10dd\u10d1\u10d0",
    "\u0bb5\u0ba3\u0b95\u0bcd\u0b95\u0bae\u0bcd", "\u09a8\u09ae\u09b8\u09cd\u0995\u09be\u09b0",
    "\u0f56\u0f40\u0fb2\u0f0b\u0f64\u0f72\u0f66\u0f0b", "\u1830\u1820\u1828", "\u1230\u120b\u121d",
    "\u13a0\u13a1\u13a2 \uab70", "\u2c00\u2c30", "\u0531\u0561", "\u10a0\u2d00", "\u1e9e \u00df",
    "\u0130stanbul", "ISTANBUL \u0131l\u0131k", "\u0130", "i\u0307", "\u0131", "Stra\u00dfe", "STRASSE",
    "\u0130\u0130\u0130", "D\u0130YARBAKIR",
    # ligatures, full width, compatibility forms
    "\ufb01ne \ufb02ow", "\ufb00 \ufb03 \ufb04", "\u0132sselmeer \u0133", "\u0153uvre \u00e6on",
    "\uff21\uff22\uff23\uff11\uff12\uff13", "\uff01\uff1f", "\uff08\u30c6\u30b9\u30c8\uff09",
    "\u2460 \u2474 \u2488", "\u33a1 \u3392", "\u2160\u2161\u2162", "\u00aa\u00ba", "\u2075\u2080",
    # math
    "\u2200x\u2208\u211d: x\u00b2\u22650", "\u2211_{i=1}^n i", "\u221a2 \u2248 1.414",
    "\u03b1+\u03b2=\u03b3", "\u221e \u2260 \u2192 \u21d2", "f(x) = \u222b\u2080^\u221e e^{-x} dx",
    "\u2202f/\u2202x", "A \u2229 B \u222a C", "\u2115 \u2124 \u211a \u211d \u2102", "\u27e8x, y\u27e9",
    "\u00b1 \u00d7 \u00f7", "\u2264\u2265", "\u2032 \u2033", "\u2030",
    # special-token text (split on the raw text, not normalised)
    "[CLS]", "[SEP]", "[MASK]", "[UNK]", "[PAD]", "hello [SEP] world", "x[SEP]y", "[cls] [Sep]",
    "[SEP", "SEP]", "[[SEP]]", "[MASK][MASK]", "[CLS][SEP][PAD][UNK][MASK]", "a [MASK] b",
    "[unused0]", "[unused1] text", "\u00e9[SEP]\u0301", "\u4e2d[SEP]\u6587", "[ SEP ]",
    # canonical reordering of marks that survive accent stripping
    "a\U0001d16d\U0001d165", "a\U0001d165\U0001d16d", "x\U0001d16d\u0941\U0001d165",
    "x\U0001d16d\u0301\U0001d165", "x\u302f\u302e", "x\U0001d16d\u302e", "x\u302e\U0001d16d",
    "\U0001d15e\U0001d15f", "x\u1b44\U0001d165", "x\U0001d165\u1b44", "x\u08d4\U0001d16d",
    "x\U0001d16d\u08d4", "x\U0001e000\u1b44", "x\u1b44\U0001e000", "x\U00011446\U000111c0",
    "x\U000111c0\U00011446", "x" + "\U0001d16d" * 40 + "\U0001d165" * 40,
    "\u0f71\u0f72\u0f74", "\u0f73", "\u0f75\u0f81",
    # characters Unicode added after HF's tables were made
    "\u0898\u0899", "\u1c89\u1c8a", "\ua7cb\ua7cc", "\U00010d50\U00010d70", "\U00011938",
    "\U00011935\U00011930", "\u2e43\u2e52", "\U00011944", "\u0c77", "\u166d", "\u1b7d",
    "\u08ca\u08cb", "\U0001e4ec", "\u1abf\u1ac0", "\U00016ff0", "\u2e5d",
    # mixed scripts and sentences
    "The caf\u00e9 in M\u00fcnchen serves cr\u00e8me br\u00fbl\u00e9e for \u20ac5.",
    "Das Stra\u00dfenfest findet am 3. M\u00e4rz statt.", "\u00c7a va tr\u00e8s bien, merci!",
    "El ni\u00f1o come pi\u00f1a en Espa\u00f1a.", "Dzie\u0144 dobry, jak si\u0119 masz?",
    "\u0160\u0165astn\u00fd nov\u00fd rok", "T\u00fcrk\u00e7e \u00f6\u011frenmek \u00e7ok g\u00fczel",
    "Ti\u1ebfng Vi\u1ec7t c\u00f3 d\u1ea5u", "M\u0101ori te reo", "\u00cdsland \u00feing",
    "Transformers (Vaswani et al., 2017) use self-attention.",
    "BERT-base has 110M parameters; MiniLM-L6 has 22M.",
    "We report nDCG@10 = 0.452 (\u00b10.003) on BEIR/SciFact.",
    "Les mod\u00e8les de langue \u00e0 grande \u00e9chelle", "\u4eca\u5929\u5929\u6c14\u5f88\u597d, let's go!",
    "\u041c\u043e\u0441\u043a\u0432\u0430 is the capital of \u0420\u043e\u0441\u0441\u0438\u044f.",
    "\u0391\u03b8\u03ae\u03bd\u03b1 (Athens) \u2014 \u1f08\u03b8\u1fc6\u03bd\u03b1\u03b9",
    "\u05d9\u05e8\u05d5\u05e9\u05dc\u05d9\u05dd / \u0627\u0644\u0642\u062f\u0633 / Jerusalem",
    "\u092d\u093e\u0930\u0924 (India) \u0e44\u0e17\u0e22 (Thailand)",
    "\ud55c\uad6d (Korea) \u65e5\u672c (Japan) \u4e2d\u56fd (China)",
    "emoji \U0001f600 in \U0001f680 text \u2728 with \U0001f44d\U0001f3fb skin",
    "mixed\u00a0nbsp\u2009thin\u200bzero space",
    "Tab\tseparated\tvalues\nand\r\nCRLF lines",
]

# Characters worth seeing in several positions: alone, inside a word, upper-cased word.
CONTEXT_CHARS = [
    "\u00e9", "\u00c9", "\u00df", "\u1e9e", "\u0130", "\u0131", "\u00f1", "\u00c5", "\u212b",
    "\u00e6", "\u0153", "\ufb01", "\u00b7", "\u2019", "\u2014", "\u2026", "\u00a0", "\u2003",
    "\u3000", "\u200b", "\ufeff", "\u00ad", "\x00", "\x07", "\x7f", "\u0085", "\ufffd", "\ue000",
    "\u4e2d", "\uf900", "\U00020000", "\U0002b820", "\uac00", "\u30a2", "\uff76", "\uff21",
    "\uff01", "\U0001f600", "\u200d", "\ufe0f", "\u0301", "\u0308", "\u0941", "\u093f", "\u0e31",
    "\u05b8", "\u064b", "\U0001d16d", "\u302e", "\u0378", "\u00bd", "\u00b2", "\u2460", "\u2126",
    "\u03a3", "\u03c2", "\u0414", "\u10a0", "\u13a0", "\U00010400", "\U0001e900", "\u1c89",
    "\ua7cb", "\u2e43", "\u0898", "\u0024", "\u005f", "\u002d", "\u0027", "\u0023", "\u00a7",
    "\u00ab", "\u00bb", "\u201e", "\u2030", "\u20ac", "\u2122", "\u221e", "\u2192", "\u3001",
]


def context_texts():
    out = []
    for c in CONTEXT_CHARS:
        out += ["x%sy" % c, "Word%s WORD%s" % (c, c), "%s %s%s" % (c, c, c)]
    return out


def load_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def data_texts(data_dir):
    texts = []
    for p in load_jsonl(os.path.join(data_dir, "papers.jsonl")):
        texts.append(("title", p["title"]))
        texts.append(("abstract", p["text"]))
    for name in ("queries.jsonl", "title-queries.jsonl"):
        for q in load_jsonl(os.path.join(data_dir, name)):
            texts.append(("query", q["text"]))
    return texts


class Reference:
    """The Hugging Face tokenizer of a model folder: transformers' BertTokenizerFast if
    transformers is importable, else the tokenizers library on tokenizer.json."""

    def __init__(self, model_dir):
        self.model_dir = model_dir
        try:
            import transformers
            from transformers import BertTokenizerFast
            self.hf = BertTokenizerFast.from_pretrained(model_dir)
            self.backend = self.hf.backend_tokenizer
            self.name = "transformers %s BertTokenizerFast (%s), tokenizers %s" % (
                transformers.__version__, type(self.hf).__name__, _tokenizers_version())
        except ImportError:
            from tokenizers import Tokenizer
            self.hf = None
            self.backend = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
            self.name = "tokenizers %s Tokenizer.from_file(tokenizer.json)" % _tokenizers_version()
        # A private copy for the raw runs: no truncation, no padding, no [CLS]/[SEP].
        from tokenizers import Tokenizer
        self.raw = Tokenizer.from_str(self.backend.to_str())
        self.raw.no_truncation()
        self.raw.no_padding()

    def encode(self, texts, max_length):
        if self.hf is not None:
            return self.hf(texts, truncation=True, max_length=max_length)["input_ids"]
        cls, sep = self.raw.token_to_id("[CLS]"), self.raw.token_to_id("[SEP]")
        out = []
        for e in self.raw.encode_batch(texts, add_special_tokens=False):
            out.append([cls] + e.ids[: max(0, max_length - 2)] + [sep])
        return out


def _tokenizers_version():
    import tokenizers
    return tokenizers.__version__


def sentence_transformers_max_length(model_dir):
    """The max length SentenceTransformer.encode truncates at, and where it came from."""
    try:
        from sentence_transformers import SentenceTransformer
        return SentenceTransformer(model_dir, device="cpu").max_seq_length, "sentence-transformers"
    except ImportError:
        with open(os.path.join(model_dir, "sentence_bert_config.json")) as f:
            return json.load(f)["max_seq_length"], "sentence_bert_config.json"


def write_cases(ref, model_dir, data_dir, path):
    max_length, max_from = sentence_transformers_max_length(model_dir)
    cases = data_texts(data_dir)
    hard = HARD_TEXTS + context_texts()
    # Long texts that get truncated: abstracts joined, a word list, a repeated phrase.
    abstracts = [t for kind, t in cases if kind == "abstract"]
    hard += [" ".join(abstracts[i : i + 3]) for i in range(0, 9, 3)]
    hard += [" ".join("word%d" % i for i in range(300))]
    hard += [("\u00c9t\u00e9 \u4e2d\u6587 na\u00efve " * 40)]
    cases += [("hard", t) for t in hard]
    texts = [t for _, t in cases]
    ids = ref.encode(texts, max_length)
    # Truncation at small max lengths: every hard string and the first 20 abstracts.
    small = [i for i, (kind, _) in enumerate(cases) if kind == "hard"]
    small += [i for i, (kind, _) in enumerate(cases) if kind == "abstract"][:20]
    truncated = {i: {} for i in small}
    for ml in SMALL_MAX_LENGTHS:
        for i, row in zip(small, ref.encode([texts[i] for i in small], ml)):
            truncated[i][str(ml)] = row

    meta = {
        "reference": ref.name,
        "model": os.path.basename(os.path.normpath(model_dir)),
        "max_length": max_length,
        "max_length_from": max_from,
        "n_cases": len(cases),
        "n_hard_strings": len(hard),
        "n_truncated": len(small) * len(SMALL_MAX_LENGTHS),
    }
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps({"meta": meta}) + "\n")
        for i, (kind, text) in enumerate(cases):
            row = {"kind": kind}
            if "\x00" in text:
                row["hex"] = text.encode("utf-8").hex()
            else:
                row["text"] = text
            row["ids"] = ids[i]
            if i in truncated:
                row["truncated"] = truncated[i]
            f.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
    return meta


# tokenizer_config.json settings other than the default model's, each run on the hard
# strings of up to OPTION_TEXT_CHARS chars from a folder holding just vocab.txt and it.
OPTION_CONFIGS = [
    {"do_lower_case": False},
    {"do_lower_case": True, "strip_accents": False},
    {"do_lower_case": False, "strip_accents": True, "tokenize_chinese_chars": False},
]
OPTION_TEXT_CHARS = 300


def option_texts():
    return [t for t in HARD_TEXTS + context_texts() if len(t) <= OPTION_TEXT_CHARS]


def write_options(model_dir, path):
    import shutil
    import tempfile
    texts = option_texts()
    rows = []
    for config in OPTION_CONFIGS:
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copy(os.path.join(model_dir, "vocab.txt"), tmp)
            with open(os.path.join(tmp, "tokenizer_config.json"), "w") as f:
                json.dump(config, f)
            try:
                from transformers import BertTokenizerFast
                hf = BertTokenizerFast.from_pretrained(tmp)
                max_length = hf.model_max_length if hf.model_max_length < 10**9 else 512
                ids = hf(texts, truncation=True, max_length=max_length)["input_ids"]
            except ImportError:
                ids = _tokenizers_pipeline(tmp, config, texts)
        rows.append({"config": config, "ids": ids})
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps({"meta": {"texts": "the hard strings of tokenizer_cases.jsonl of at "
                                              "most %d chars, in order" % OPTION_TEXT_CHARS,
                                     "n_texts": len(texts), "max_length": 512}}) + "\n")
        for row in rows:
            f.write(json.dumps(row, separators=(",", ":")) + "\n")
    return len(texts) * len(rows)


def _tokenizers_pipeline(folder, config, texts):
    """BertTokenizerFast's pipeline built with the tokenizers library alone."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    lower = config.get("do_lower_case", True)
    tk = Tokenizer(models.WordPiece.from_file(os.path.join(folder, "vocab.txt"), unk_token="[UNK]"))
    tk.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=config.get("tokenize_chinese_chars", True),
        strip_accents=config.get("strip_accents"), lowercase=lower)
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls, sep = tk.token_to_id("[CLS]"), tk.token_to_id("[SEP]")
    tk.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    tk.add_special_tokens(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tk.enable_truncation(512)
    return [e.ids for e in tk.encode_batch(texts)]


def all_code_points():
    return [c for c in range(0x110000) if not 0xD800 <= c < 0xE000]


def write_code_points(ref, path):
    cps = all_code_points()
    encs = ref.raw.encode_batch(["a" + chr(c) + "b" for c in cps], add_special_tokens=False)
    runs = []
    for c, e in zip(cps, encs):
        ids = tuple(e.ids)
        if runs and runs[-1][2] == ids and runs[-1][0] + runs[-1][1] == c:
            runs[-1][1] += 1
        else:
            runs.append([c, 1, ids])
    with open(path, "w") as f:
        f.write("# %s: \"a\" c \"b\" for every code point c, no [CLS]/[SEP]\n" % ref.name)
        f.write("# first(hex) count(hex) ids...\n")
        for first, count, ids in runs:
            f.write("%x %x %s\n" % (first, count, " ".join(map(str, ids))))
    return len(runs)


# ------------------------------------------------------------------ Unicode tables


def ranges(cps):
    out = []
    for c in cps:
        if out and out[-1][1] == c - 1:
            out[-1][1] = c
        else:
            out.append([c, c])
    return out


def c_ranges(name, comment, cps):
    rs = ranges(sorted(cps))
    items = ["{0x%X, 0x%X}" % (a, b) for a, b in rs]
    lines = ["/* %s (%d ranges) */" % (comment, len(rs)),
             "static const cp_range %s[] = {" % name]
    line = "   "
    for it in items:
        if len(line) + len(it) + 2 > 96:
            lines.append(line)
            line = "   "
        line += " " + it + ","
    lines.append(line)
    lines.append("};")
    return "\n".join(lines)


def c_pairs(name, comment, pairs, fields):
    lines = ["/* %s (%d entries) */" % (comment, len(pairs)),
             "static const %s %s[] = {" % (fields, name)]
    line = "   "
    for a, b in pairs:
        it = "{0x%X, %s}" % (a, ("0x%X" % b) if fields == "cp_map" else str(b))
        if len(line) + len(it) + 2 > 96:
            lines.append(line)
            line = "   "
        line += " " + it + ","
    lines.append(line)
    lines.append("};")
    return "\n".join(lines)


def unicode_tables():
    import ctypes
    import unicodedata
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer

    clean = BertNormalizer(clean_text=True, handle_chinese_chars=False, strip_accents=False, lowercase=False)
    chinese = BertNormalizer(clean_text=False, handle_chinese_chars=True, strip_accents=False, lowercase=False)
    strip = BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=True, lowercase=False)
    lower = BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=False, lowercase=True)
    pre = BertPreTokenizer()
    lib = ctypes.CDLL(ctypes.util.find_library("utf8proc") or "libutf8proc.so.2")
    lib.utf8proc_tolower.restype = ctypes.c_int32
    lib.utf8proc_tolower.argtypes = [ctypes.c_int32]
    lib.utf8proc_decompose_char.restype = ctypes.c_ssize_t
    lib.utf8proc_decompose_char.argtypes = [ctypes.c_int32, ctypes.POINTER(ctypes.c_int32),
                                            ctypes.c_ssize_t, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    lib.utf8proc_unicode_version.restype = ctypes.c_char_p
    UTF8PROC_DECOMPOSE = 1 << 4
    buf = (ctypes.c_int32 * 32)()
    bound = ctypes.c_int(0)

    def utf8proc_nfd(c):
        n = lib.utf8proc_decompose_char(c, buf, 32, UTF8PROC_DECOMPOSE, ctypes.byref(bound))
        return [buf[i] for i in range(n)]

    cps = all_code_points()
    other, space, cjk, punct, mark = [], [], [], [], []
    lower_diff, nfd_diff = [], []
    for c in cps:
        s = chr(c)
        if clean.normalize_str(s) == "":
            other.append(c)
        pieces = pre.pre_tokenize_str("a" + s + "a")
        if len(pieces) == 2:
            space.append(c)
        elif len(pieces) == 3:
            punct.append(c)
        if chinese.normalize_str(s) != s:
            cjk.append(c)
        if strip.normalize_str(s) == "":
            mark.append(c)
    mark_set = set(mark)
    for c in cps:
        s = chr(c)
        hf_lower = [ord(x) for x in lower.normalize_str(s)]
        if hf_lower != [lib.utf8proc_tolower(c)]:
            lower_diff.append((c, hf_lower))
        hf_strip = [ord(x) for x in strip.normalize_str(s)]
        mine = [d for d in utf8proc_nfd(c) if d not in mark_set]
        if hf_strip != mine:
            nfd_diff.append((c, hf_strip))
    # Marks that survive accent stripping yet take part in canonical ordering, with the
    # combining class HF's NFD gives them: probed pairwise, since HF's normalisation
    # tables are older than Python's and utf8proc's.
    cand = [c for c in cps if unicodedata.combining(chr(c)) and c not in mark_set
            and strip.normalize_str(chr(c)) == chr(c)]
    moved = set()
    for c in cand:
        for d in cand:
            if strip.normalize_str(chr(c) + chr(d)) != chr(c) + chr(d):
                moved.update((c, d))
    nonstarters = [(c, unicodedata.combining(chr(c))) for c in cand if c in moved]

    def hf_ccc(c):
        return dict(nonstarters).get(c, 0)

    for c in cand:  # check the inferred classes against every pair once more
        for d in cand:
            s = chr(c) + chr(d)
            want = s if hf_ccc(d) == 0 or hf_ccc(c) <= hf_ccc(d) else chr(d) + chr(c)
            if strip.normalize_str(s) != want:
                sys.exit("canonical order of U+%04X U+%04X not explained" % (c, d))

    lower_pairs = []
    for c, ls in lower_diff:
        if len(ls) != 1 and c != 0x130:
            sys.exit("unexpected multi-character lowercase U+%04X" % c)
        if c != 0x130:
            lower_pairs.append((c, ls[0]))
    no_decomp = []
    for c, hs in nfd_diff:
        if hs != [c]:
            sys.exit("HF's NFD of U+%04X is %s, not handled" % (c, hs))
        no_decomp.append(c)

    parts = [
        "/* Generated by tools/make_tokenizer_fixtures.py --update-tables from tokenizers %s\n"
        " * and utf8proc %s; do not edit by hand. */"
        % (_tokenizers_version(), lib.utf8proc_unicode_version().decode()),
        c_ranges("other_ranges", "removed by clean_text: NUL, U+FFFD, Cc except \\t\\n\\r, Cf, Co", other),
        c_ranges("space_ranges", "Rust char::is_whitespace", space),
        c_ranges("cjk_ranges", "spaced out by handle_chinese_chars", cjk),
        c_ranges("punct_ranges", "split off by BertPreTokenizer: ASCII punctuation and P*", punct),
        c_ranges("mark_ranges", "removed by strip_accents after NFD: Mn", mark),
        c_pairs("nonstarter_classes", "surviving non-starters: canonical combining class in HF's NFD",
                nonstarters, "cp_class"),
        c_pairs("lower_overrides", "Rust char::to_lowercase where utf8proc_tolower differs (U+0130 aside)",
                lower_pairs, "cp_map"),
        c_ranges("no_decomp_ranges", "HF's NFD leaves alone, utf8proc decomposes", no_decomp),
    ]
    return "\n\n".join(parts) + "\n"


def update_tables():
    begin, end = "/* BEGIN GENERATED TABLES */\n", "/* END GENERATED TABLES */\n"
    with open(TOKENIZER_C, encoding="utf-8") as f:
        src = f.read()
    a, b = src.index(begin) + len(begin), src.index(end)
    with open(TOKENIZER_C, "w", encoding="utf-8") as f:
        f.write(src[:a] + unicode_tables() + src[b:])
    print("rewrote the tables in %s" % os.path.relpath(TOKENIZER_C, ROOT))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "all-MiniLM-L6-v2"))
    ap.add_argument("--data", default=DATA)
    ap.add_argument("--update-tables", action="store_true",
                    help="rewrite the generated Unicode tables of src/text/tokenizer.c and stop")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if args.update_tables:
        import ctypes.util  # noqa: F401  (loads ctypes.util for unicode_tables)
        update_tables()
        return
    ref = Reference(args.model)
    os.makedirs(FIXTURES, exist_ok=True)
    meta = write_cases(ref, args.model, args.data, os.path.join(FIXTURES, "tokenizer_cases.jsonl"))
    n_runs = write_code_points(ref, os.path.join(FIXTURES, "tokenizer_codepoints.txt"))
    n_options = write_options(args.model, os.path.join(FIXTURES, "tokenizer_options.jsonl"))
    print("reference: %s" % meta["reference"])
    print("tokenizer_cases.jsonl: %d cases (%d hard strings), max length %d (%s)"
          % (meta["n_cases"], meta["n_hard_strings"], meta["max_length"], meta["max_length_from"]))
    print("tokenizer_codepoints.txt: %d runs" % n_runs)
    print("tokenizer_options.jsonl: %d cases (%d tokenizer_config.json settings)"
          % (n_options, len(OPTION_CONFIGS)))


if __name__ == "__main__":
    main()

"""THE table of call-syntax families. Adding a family is one entry here plus its fixtures in
tests/fixtures/callsyntax/<name>.jsonl (each line names the template or parser test it came from).

An entry says how to recognise the family (its opening markers, each with the reader of the body
that follows), how its models reason (delimiters), which control tokens are noise in the prose,
and how to tell that a model writes this family natively (model-name patterns and chat-template
fingerprints), so scoring can say "the server's parser lost a call the model wrote in its own syntax".

Where several families open with the same marker (`<tool_call>`: Hermes JSON, Qwen3-Coder XML,
GLM), their readers are tried in table order and the first that recognises the body wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from . import readers as r
from .readers import Reader

THINK = ("<think>", "</think>")


@dataclass(frozen=True)
class Family:
    name: str
    markers: tuple[tuple[str, Reader], ...]  # opening marker -> reader of what follows it
    description: str
    closer: str | None = None  # the block's end marker: a block nobody can read but that closes is still an attempt
    reasoning: tuple[tuple[str, str], ...] = ()  # (open, close) delimiters of this family's reasoning
    noise: tuple[str, ...] = ()  # regexes of control tokens that are not prose
    models: tuple[str, ...] = ()  # regexes over the lower-cased model name: this family is the model's own
    template: tuple[str, ...] = ()  # regexes that all match the model's chat template: likewise
    sources: tuple[str, ...] = field(default=())  # where the syntax is documented (fixtures cite lines)


def _llama_python_tag(ctx: r.Ctx, at: int, marker: str) -> r.Read | None:
    """Llama 3.1-3.3: `<|python_tag|>{"name": ..., "parameters": {...}}` (several joined by `;`), or a
    built-in tool as `brave_search.call(query="...")`; `<|eom_id|>` ends it and is a stop token."""
    pos = ctx.skip_ws(at + len(marker))
    if pos >= ctx.end:
        return r.Read(ctx.end, [], "cut off right after <|python_tag|>")
    if ctx.text[pos] in "{[":
        calls = []
        while True:
            end, found, reason = r.json_calls(ctx, pos)
            calls += found
            nxt = ctx.skip_ws(end)
            if reason or not ctx.at(nxt, ";"):
                return r.Read(end, calls, reason)
            pos = ctx.skip_ws(nxt + 1)
    stop = ctx.find.first(("<|eom_id|>", "<|eot_id|>"), pos, ctx.end)[0]
    stop = stop if stop >= 0 else ctx.end
    source = ctx.text[pos:stop].strip().replace(".call(", "(")
    calls, error = r.pythonic_calls(source, None)
    return r.Read(stop, calls, error)


FAMILIES: tuple[Family, ...] = (
    Family(
        "hermes", (("<tool_call>", r.json_block("</tool_call>")),),
        "Hermes / Qwen 2.5 / Qwen 3 / QwQ / Granite 4: <tool_call>{json}</tool_call>",
        closer="</tool_call>", reasoning=(THINK,), noise=(r"<\|im_end\|>",),
        models=(r"qwen2(\.5)?", r"qwen3", r"qwq", r"hermes", r"hermes-[23](-pro)?-llama-?3(\.1)?", r"granite-?4"),
        template=(r'<tool_call>(?:\\n|\s)*\{\\?"name\\?"|<tool_call></tool_call> XML tags',),
    ),
    Family(
        "qwen3_xml", (("<tool_call>", r.xml_block("</tool_call>", True)), ("<function=", r.xml_block("", True))),
        "Qwen3-Coder / Qwen 3.5+ / Nemotron 3: <tool_call><function=NAME><parameter=KEY>VALUE</parameter>"
        "</function></tool_call>, values typed by the tool's JSON Schema",
        closer="</tool_call>", reasoning=(THINK,), noise=(r"<\|im_end\|>",),
        models=(r"qwen3[-_ .]?coder", r"qwen3\.[5-9]", r"qwen3[-_.]?[5-9]\b", r"nemotron-?3"),
        template=(r"<function=", r"<parameter="),
    ),
    Family(
        "glm", (("<tool_call>", r.glm),),
        "GLM-4.5/4.6/4.7: <tool_call>NAME<arg_key>K</arg_key><arg_value>V</arg_value>...</tool_call>",
        closer="</tool_call>", reasoning=(THINK,),
        models=(r"glm-?4\.[5-9]", r"glm-?4[-_.]?moe", r"glm-?[5-9]\b"),
        template=(r"<arg_key>", r"<tool_call>"),
    ),
    Family(
        "llama3", (("<|python_tag|>", _llama_python_tag),),
        "Llama 3.1-3.3: bare {\"name\": ..., \"parameters\": {...}} or <|python_tag|>...",
        noise=(r"<\|eot_id\|>", r"<\|eom_id\|>"),
        models=(r"llama-?3\.[123]", r"llama-?3-", r"llama3\b"),
        template=(r"<\|python_tag\|>|\"parameters\": dictionary", r'\\?"parameters\\?": '),
    ),
    Family(
        "pythonic", (("<|python_start|>", r.python_block("<|python_end|>")),
                     ("<|tool_call_start|>", r.python_block("<|tool_call_end|>"))),
        "Llama 4, LFM2 and BFCL's prompt mode: [f(a=1), g(b=\"x\")], bare or in <|python_start|>",
        models=(r"llama-?4", r"lfm2"),
        template=(r"<\|python_start\|>|<\|tool_call_start\|>",),
    ),
    Family(
        "mistral", (("[TOOL_CALLS]", r.mistral),),
        "Mistral: [TOOL_CALLS][{json}] (v3) and [TOOL_CALLS]NAME[CALL_ID]ID[ARGS]{json} (v11+)",
        reasoning=(("[THINK]", "[/THINK]"),), noise=(r"</s>",),
        models=(r"mistral", r"mixtral", r"ministral", r"devstral", r"magistral", r"codestral", r"pixtral"),
        template=(r"\[TOOL_CALLS\]",),
    ),
    Family(
        "gemma4", (("<|tool_call>", r.gemma4),),
        "Gemma 4: <|tool_call>call:NAME{key:<|\"|>text<|\"|>}<tool_call|>",
        closer="<tool_call|>", reasoning=(("<|channel>thought", "<channel|>"),),
        noise=(r"<turn\|>", r"<\|tool_response>"),
        models=(r"gemma-?4",), template=(r"<\|tool_call>",),
    ),
    Family(
        "gemma3", (("```tool_code", r.fence),),
        "Gemma 3 (prompted): a ```tool_code fence around a Python call",
        models=(r"gemma-?3",),
    ),
    Family(
        "kimi_k2", (("<|tool_calls_section_begin|>", r.kimi), ("<|tool_call_begin|>", r.kimi)),
        "Kimi K2: <|tool_calls_section_begin|><|tool_call_begin|>functions.NAME:IDX"
        "<|tool_call_argument_begin|>{json}<|tool_call_end|>...<|tool_calls_section_end|>",
        reasoning=(THINK,), noise=(r"<\|im_end\|>",),
        models=(r"kimi-?k2",), template=(r"<\|tool_calls_section_begin\|>",),
    ),
    Family(
        "kimi_k3", (("<|open|>", r.kimi_k3),),
        "Kimi K3 (XTML): <|open|>tools<|sep|><|open|>call tool=\"NAME\" index=\"1\"<|sep|><|open|>argument "
        "key=\"K\" type=\"string\"<|sep|>V<|close|>argument<|sep|><|close|>call<|sep|><|close|>tools<|sep|>",
        reasoning=(("<|open|>think<|sep|>", "<|close|>think<|sep|>"),),
        noise=(r"<\|open\|>\s*response\s*<\|sep\|>", r"<\|close\|>\s*response\s*<\|sep\|>",
               r"<\|close\|>\s*message\s*<\|sep\|>", r"<\|end_of_msg\|>"),
        models=(r"kimi-?k3",), template=(r"<\|open\|>", r"open_tag\('tools'\)|<\|open\|>tools<\|sep\|>"),
    ),
    Family(
        "deepseek", (
            ("<｜tool▁calls▁begin｜>", r.deepseek), ("<｜tool▁call▁begin｜>", r.deepseek),
            ("<｜DSML｜function_calls>", r.invoke_xml("</｜DSML｜function_calls>", "<｜DSML｜invoke", "</｜DSML｜invoke>",
                                                     "<｜DSML｜parameter", "</｜DSML｜parameter>")),
            ("<｜DSML｜tool_calls>", r.invoke_xml("</｜DSML｜tool_calls>", "<｜DSML｜invoke", "</｜DSML｜invoke>",
                                                 "<｜DSML｜parameter", "</｜DSML｜parameter>")),
            # V4.1 spells every DSML tag with a space after the token and names the block ` calls`.
            ("<｜DSML｜ calls>", r.invoke_xml("</｜DSML｜ calls>", "<｜DSML｜ invoke", "</｜DSML｜ invoke>",
                                             "<｜DSML｜ parameter", "</｜DSML｜ parameter>")),
        ),
        "DeepSeek V3/R1 (```json fenced), V3.1 (NAME<｜tool▁sep｜>{json}), V3.2/V4 (DSML invoke blocks), "
        "V4.1 (spaced DSML: <｜DSML｜ calls><｜DSML｜ invoke name=...>)",
        reasoning=(THINK,), noise=(r"<｜end▁of▁sentence｜>",),
        models=(r"deepseek",), template=(r"tool▁calls▁begin|｜DSML｜",),
    ),
    Family(
        "harmony", (("to=functions.", r.harmony),),
        "gpt-oss Harmony: <|start|>assistant to=functions.NAME<|channel|>commentary json<|message|>{json}<|call|>",
        reasoning=(("<|channel|>analysis<|message|>", "<|end|>"),),
        noise=(r"<\|start\|>assistant", r"<\|channel\|>(?:final|commentary)(?:\s*<\|constrain\|>\s*\w+)?<\|message\|>",
               r"<\|end\|>", r"<\|return\|>", r"<\|call\|>"),
        models=(r"gpt-oss",), template=(r"<\|channel\|>", r"assistant to="),
    ),
    Family(
        "granite", (("<|tool_call|>", r.json_block(None)),),
        "Granite 3.x: <|tool_call|>[{\"name\": ..., \"arguments\": {...}}]",
        reasoning=(THINK,), noise=(r"<\|end_of_text\|>",),
        models=(r"granite-?3",), template=(r"<\|tool_call\|>",),
    ),
    Family(
        "phi4", (("functools[", r.functools),),
        "Phi-4-mini and FireFunction v2: functools[{\"name\": ..., \"arguments\": {...}}]",
        models=(r"phi-?4", r"firefunction"), template=(r"functools",),
    ),
    Family(
        "functionary", (("<function=", r.functionary_tag), (">>>", r.functionary_recipient)),
        "Functionary v3.1 <function=NAME>{json}</function> and v3.2 >>>NAME\\n{json}",
        models=(r"functionary",), template=(r">>>|<function=", r">>>\$\{recipient\}|start with <function="),
    ),
    Family(
        "command_r7b", (("<|START_ACTION|>", r.json_block("<|END_ACTION|>")),),
        "Command R7B: <|START_ACTION|>[{\"tool_call_id\", \"tool_name\", \"parameters\"}]<|END_ACTION|>",
        closer="<|END_ACTION|>", reasoning=(("<|START_THINKING|>", "<|END_THINKING|>"),),
        noise=(r"<\|START_RESPONSE\|>", r"<\|END_RESPONSE\|>", r"<\|END_OF_TURN_TOKEN\|>"),
        models=(r"command-?r7b", r"command-a"), template=(r"<\|START_ACTION\|>",),
    ),
    Family(
        "lmstudio", (("[TOOL_REQUEST]", r.json_block("[END_TOOL_REQUEST]")),),
        "LM Studio's default tool use: [TOOL_REQUEST]{json}[END_TOOL_REQUEST]",
        closer="[END_TOOL_REQUEST]",
    ),
    Family(
        "minimax", (("<minimax:tool_call>", r.invoke_xml("</minimax:tool_call>", "<invoke", "</invoke>", "<parameter",
                                                         "</parameter>")),),
        "MiniMax M2: <minimax:tool_call><invoke name=\"NAME\"><parameter name=\"K\">V</parameter></invoke>",
        reasoning=(THINK,), models=(r"minimax-?m2",), template=(r"<minimax:tool_call>",),
    ),
    Family(
        "seed_oss", (("<seed:tool_call>", r.xml_block("</seed:tool_call>", False)),),
        "Seed-OSS: <seed:tool_call><function=NAME><parameter=K>V</parameter></function></seed:tool_call>",
        closer="</seed:tool_call>", reasoning=(("<seed:think>", "</seed:think>"),), noise=(r"<seed:eos>",),
        models=(r"seed-?oss",), template=(r"<seed:tool_call>", r"<function=", r"<parameter="),
    ),
    Family(
        "json", (("```", r.fence),),
        "A fenced or bare JSON call object {\"name\": ..., \"arguments\": {...}} (or a list of them)",
    ),
)

BY_NAME = {f.name: f for f in FAMILIES}
# Families recognised without any marker, by the shape of the text (see scanner._unmarked).
assert {"json", "llama3", "pythonic", "functionary"} <= set(BY_NAME)


def own_family(model: str | None = None, chat_template: str | None = None) -> str | None:
    """The family a model writes natively: from its chat template when given (the strongest evidence),
    else from its name (`qwen2.5-coder-0.5b` -> hermes). None when nothing fits."""
    if chat_template:
        best, score = None, (0, 0)
        for family in FAMILIES:
            if family.template:
                found = [re.search(p, chat_template) for p in family.template]
                if all(found):  # more fingerprints matched = more specific; then more text matched
                    size = (len(found), sum(m.end() - m.start() for m in found if m))
                    if size > score:
                        best, score = family.name, size
        if best:
            return best
    if model:
        name = model.lower()
        best, score = None, 0
        for family in FAMILIES:
            for pattern in family.models:
                m = re.search(pattern, name)
                if m and m.end() - m.start() > score:
                    best, score = family.name, m.end() - m.start()
        return best
    return None

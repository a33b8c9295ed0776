"""``r3hf explain``: one response, its tokens coloured by reward in the terminal, and the numbers."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, TextIO

from r3hf_client.options import Baseline, Redistribution, Truncation, choices

from .backend import add_backend_flags, reward_client
from .terminal import coloured_response, reward_table, token_texts


def add_explain_parser(commands: Any, settings_class: type | None) -> None:
    parser = commands.add_parser(
        "explain", help="Show each response token coloured by its reward, with the numbers.",
        description="Score one response and print it with every token coloured by its reward (blue credit, red "
        "blame), then a table of rewards. Give --prompt and --response, or --messages.",
    )
    item = parser.add_argument_group("the item")
    item.add_argument("--prompt", help="Text before the response (templated if the RM expects a template).")
    item.add_argument("--response", help="The response to explain.")
    item.add_argument(
        "--messages", help='A chat as JSON, e.g. \'[{"role": "user", "content": "Hi"}, {"role": "assistant", '
        '"content": "Hello!"}]\'; the last message is the response.',
    )
    credit = parser.add_argument_group("credit")
    credit.add_argument(
        "--redistribution", choices=choices(Redistribution), default="r3hf", help="How the score is spread."
    )
    credit.add_argument("--beta", type=float, default=1.0, help="Mix with sparse: beta*dense + (1-beta)*sparse.")
    credit.add_argument("--baseline", choices=choices(Baseline), default="prompt", help="r3hf's first-token baseline.")
    credit.add_argument("--truncation", choices=choices(Truncation), default="error", help="Over-length handling.")
    output = parser.add_argument_group("output")
    output.add_argument("--color", choices=("auto", "always", "never"), default="auto", help="Colour the tokens.")
    output.add_argument("--json", action="store_true", help="Print the API's result as JSON instead.")
    add_backend_flags(parser, settings_class)


def explain(args: dict[str, Any], settings_class: type | None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    item, response = _item(args)
    options = {key: args.pop(key) for key in ("redistribution", "beta", "baseline", "truncation")}
    colour, as_json = _use_colour(args.pop("color"), out), args.pop("json")
    for key in ("prompt", "response", "messages"):
        args.pop(key, None)
    with reward_client(args, settings_class) as client:
        answer = client.token_rewards([item], return_tokens=True, **options)
    result = answer.results[0]
    if as_json:
        print(json.dumps(result.model_dump(), indent=2), file=out)
        return 0
    texts = token_texts(result, response)
    total = sum(result.token_rewards)
    print(f"model {answer.model} (fingerprint {answer.fingerprint}); {options['redistribution']}, beta "
          f"{options['beta']:g}, baseline {options['baseline']}", file=out)
    print(f"score {result.score:+.4f}   prompt score {result.prompt_score:+.4f}   sum of rewards {total:+.4f}   "
          f"{result.num_response_tokens} tokens", file=out)
    print("", file=out)
    print(coloured_response(texts, result.token_rewards, colour), file=out)
    print("", file=out)
    for row in reward_table(texts, result):
        print(row, file=out)
    return 0


def _item(args: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    if args.get("messages") is not None:
        if args.get("prompt") is not None or args.get("response") is not None:
            raise SystemExit("r3hf explain: give either --messages or --prompt/--response, not both")
        try:
            messages = json.loads(args["messages"])
            response = messages[-1]["content"]
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise SystemExit(f"r3hf explain: --messages must be a JSON list of {{role, content}} objects ({exc})")
        return {"messages": messages}, response
    if args.get("response") is None:
        raise SystemExit("r3hf explain: give --response (and --prompt), or --messages")
    return {"prompt": args.get("prompt") or "", "response": args["response"]}, args["response"]


def _use_colour(choice: str, out: TextIO) -> bool:
    if choice != "auto":
        return choice == "always"
    return out.isatty() and "NO_COLOR" not in os.environ

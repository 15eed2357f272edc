"""`memsvc eval`: load a benchmark, run it through the REST API of one or more memsvc configurations, report."""

import argparse
import logging
import os
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from memsvc.eval import variants
from memsvc.eval.dataset import Dataset

FORMATS = ("embs", "mteb", "locomo", "synthetic")


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "eval",
        help="run a retrieval benchmark (EverMemBench-S protocol) through the REST API",
        description="Ingest a benchmark into memsvc through its REST API, run its queries after each corpus-ladder "
        "rung, and report evidence access (R@1, SR@10, FR@10, nDCG@10, MRR, hard-negative intrusion@10) apart "
        "from answer quality. Without --url, a throw-away memsvc is started on the embedded default.",
    )
    parser.add_argument("--format", choices=FORMATS, required=True)
    parser.add_argument(
        "--data",
        default=None,
        help="data path; for synthetic an optional spec, e.g. seed=7,people=12,ladder=1000/10000",
    )
    parser.add_argument("--out", type=Path, required=True, help="directory for report.json, report.md and the plot")
    parser.add_argument("--scope", choices=("user", "global"), default="user", help="search the query's user, or all")
    parser.add_argument("--ladder", default=None, help="corpus sizes to evaluate at, e.g. 1000,10000 (default: data's)")
    parser.add_argument("--config", default="default", help="name of this configuration in the report")
    parser.add_argument("--url", default=None, help="a running memsvc (with --admin-key or --api-key)")
    parser.add_argument("--admin-key", default=os.environ.get("MEMSVC_ADMIN_KEY"), help="creates a fresh tenant")
    parser.add_argument("--api-key", default=None, help="a tenant key to use instead (its memories must be empty)")
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="NAME[:KEY=VALUE,...]",
        help="a server configuration to run (repeatable), e.g. 384d  256d:EMBEDDING_DIM=256,EMBEDDING_MODEL_ID=m256; "
        "each starts its own embedded memsvc with those MEMSVC_* settings",
    )
    parser.add_argument(
        "--search",
        action="append",
        default=[],
        metavar="NAME[:KEY=VALUE,...]",
        help="a search variant (repeatable), run on the same ingested data after each rung, e.g. "
        'dense:mode=dense,parse_time=false  hier:expand=["evidence"]  fused:weights.dense=1,weights.lexical=0.5; '
        "values are JSON when they parse, else text; dotted keys build nested objects. One report run per "
        "configuration and variant, named CONFIG/VARIANT (VARIANT alone with one configuration)",
    )
    parser.add_argument("--scale", default=None, help="embs: the scale folder")
    parser.add_argument("--domain", default=None, help="embs: the domain folder")
    parser.add_argument(
        "--llm-url",
        default=os.environ.get("MEMSVC_EVAL_LLM_URL"),
        help="OpenAI-compatible API base URL (e.g. http://127.0.0.1:8001/v1): adds an LLM answerer and a 0-5 judge",
    )
    parser.add_argument("--llm-model", default=os.environ.get("MEMSVC_EVAL_LLM_MODEL"), help="model for both roles")
    parser.add_argument("--llm-api-key", default=os.environ.get("MEMSVC_EVAL_LLM_API_KEY"))
    parser.add_argument(
        "--consolidate",
        default=None,
        metavar="BACKEND",
        help="after each rung, consolidate every user with 8+ memories with this backend (e.g. extractive)",
    )
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(run=run_command)


def load_dataset(args: argparse.Namespace) -> Dataset:
    if args.format == "synthetic":
        from memsvc.eval.synthetic import load_synthetic

        dataset = load_synthetic(args.data)
    else:
        from memsvc.eval.loaders import load

        if not args.data:
            raise SystemExit(f"--data is required for --format {args.format}")
        options = {"scale": args.scale, "domain": args.domain} if args.format == "embs" else {}
        dataset = load(args.format, Path(args.data), **options)
    if args.ladder:
        dataset = replace(dataset, ladder=[int(n) for n in args.ladder.split(",")])
    return dataset


def server_configurations(specs: list[str], default_name: str) -> list[variants.ServerConfiguration]:
    """The `--compare` configurations in the order given; one of `default_name` with default settings if none."""
    try:
        parsed = [variants.parse_configuration(spec) for spec in specs]
        variants.check_unique([configuration.name for configuration in parsed], "--compare")
    except ValueError as error:
        raise SystemExit(str(error)) from None
    return parsed or [variants.ServerConfiguration(default_name)]


def search_variants(specs: list[str]) -> list[variants.SearchVariant]:
    """The `--search` variants in the order given; the default variant (no extra fields) when none is."""
    try:
        parsed = [variants.parse_search_variant(spec) for spec in specs]
        variants.check_unique([variant.name for variant in parsed], "--search")
    except ValueError as error:
        raise SystemExit(str(error)) from None
    return parsed or [variants.DEFAULT_VARIANT]


def run_command(args: argparse.Namespace) -> int:
    from memsvc.eval import runner
    from memsvc.eval.client import create_tenant_key, eval_client
    from memsvc.eval.judge import LlmEndpoint, LlmJudge
    from memsvc.eval.report import write_reports

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request would bury the progress bars
    if args.url and args.compare:
        raise SystemExit("--compare starts its own memsvc per configuration; it cannot be combined with --url")
    searches = search_variants(args.search)
    configurations = server_configurations(args.compare, args.config)
    dataset = load_dataset(args)
    llm = None
    if args.llm_url:
        if not args.llm_model:
            raise SystemExit("--llm-url needs --llm-model")
        llm = LlmJudge(LlmEndpoint(args.llm_url, args.llm_model, args.llm_api_key))
    options = runner.RunOptions(scope=args.scope, progress=not args.no_progress, llm=llm, consolidate=args.consolidate)
    runs: list[dict[str, Any]] = []
    if args.url:
        key = args.api_key or create_tenant_key(args.url, _required(args.admin_key), f"eval-{uuid.uuid4().hex[:8]}")
        external = variants.ServerConfiguration(args.config)
        with eval_client(args.url, key) as client:
            by_variant = runner.run_variants(dataset, client, options, searches)
        for variant in searches:
            name = variants.run_name(args.config, variant.name, configurations=1, variants_given=bool(args.search))
            rungs = by_variant[variant.name]
            runs.append(runner.describe_run(name, external, variant, options, rungs, f"external {args.url}"))
    else:
        plan = [(configuration, searches) for configuration in configurations]
        runs = runner.run_on_embedded_servers(dataset, plan, options, variants_given=bool(args.search))
    if llm is not None:
        llm.close()
    for path in write_reports(args.out, runner.describe(dataset), runs):
        print(f"wrote {path}")
    return 0


def _required(admin_key: str | None) -> str:
    if not admin_key:
        raise SystemExit("--url needs --admin-key (or MEMSVC_ADMIN_KEY) to create a tenant, or --api-key")
    return admin_key

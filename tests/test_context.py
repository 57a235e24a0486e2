"""Context selection on a synthetic 200-table schema (pure: no database needed)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pg_mcp.ask.context import (
    estimate_tokens,
    rank_databases,
    render_schema,
    render_table,
    score_tables,
    select_context,
    terms,
    words,
)
from pg_mcp.core.model import Column, Constraint, DatabaseSchema, Table
from pg_mcp.refs.notes import load as load_notes

REFERENCES = Path(__file__).resolve().parent.parent / "references"
# the shared Chinese -> English data words (references/notes/_glossary.toml)
GLOSSARY = load_notes(REFERENCES, "none").glossary


def col(
    name: str,
    type_: str = "text",
    comment: str | None = None,
    samples: list[str] | None = None,
    nullable: bool = True,
) -> Column:
    return Column(name=name, type=type_, comment=comment, samples=samples, nullable=nullable)


def pk(*cols: str) -> Constraint:
    return Constraint(name="pk", kind="primary key", columns=list(cols))


def fk(column: str, schema: str, table: str, ref: str = "id") -> Constraint:
    return Constraint(
        name=f"fk_{column}",
        kind="foreign key",
        columns=[column],
        ref_schema=schema,
        ref_table=table,
        ref_columns=[ref],
    )


def T(
    schema: str,
    name: str,
    cols: list[Column],
    comment: str | None = None,
    cons: list[Constraint] | None = None,
    rows: int = 1000,
) -> Table:
    return Table(
        schema=schema,
        name=name,
        kind="table",
        columns=[col("id", "bigint", nullable=False), *cols],
        constraints=[pk("id"), *(cons or [])],
        comment=comment,
        row_estimate=rows,
    )


def core_tables() -> list[Table]:
    return [
        T(
            "sales",
            "customers",
            [
                col("full_name", comment="客户姓名"),
                col("email"),
                col("city", comment="所在城市", samples=["北京", "上海", "Shenzhen"]),
                col("created_at", "timestamptz"),
            ],
            "客户信息 / customers who buy",
        ),
        T(
            "sales",
            "orders",
            [
                col("customer_id", "bigint"),
                col(
                    "status",
                    "order_status",
                    comment="订单状态",
                    samples=["pending", "shipped", "backordered"],
                ),
                col("ordered_at", "timestamptz"),
                col("total_amount", "numeric(12,2)", comment="订单总金额"),
            ],
            "订单 / customer orders",
            [fk("customer_id", "sales", "customers")],
        ),
        T(
            "sales",
            "order_items",
            [
                col("order_id", "bigint"),
                col("product_id", "bigint"),
                col("quantity", "integer", comment="数量"),
                col("unit_price", "numeric(10,2)", comment="单价"),
            ],
            "订单明细 / order lines",
            [fk("order_id", "sales", "orders"), fk("product_id", "sales", "products")],
        ),
        T(
            "sales",
            "products",
            [
                col("name", comment="商品名称"),
                col("category_id", "bigint"),
                col("list_price", "numeric(10,2)"),
            ],
            "商品 / products for sale",
            [fk("category_id", "sales", "categories")],
        ),
        T(
            "sales",
            "categories",
            [col("name", comment="类别名称"), col("parent_id", "bigint")],
            "商品类别 / product categories",
        ),
        T("hr", "departments", [col("name", comment="部门名称"), col("budget", "numeric")], "部门"),
        T(
            "hr",
            "employees",
            [
                col("full_name", comment="员工姓名"),
                col("department_id", "bigint"),
                col("hired_on", "date", comment="入职日期"),
            ],
            "员工",
            [fk("department_id", "hr", "departments")],
        ),
        T(
            "hr",
            "salaries",
            [
                col("employee_id", "bigint"),
                col("amount", "numeric(12,2)", comment="工资金额"),
                col("paid_on", "date"),
            ],
            "工资记录 / salary payments",
            [fk("employee_id", "hr", "employees")],
        ),
        T(
            "inventory",
            "warehouses",
            [col("name", comment="仓库名称"), col("region")],
            "仓库 / warehouses",
        ),
        T(
            "inventory",
            "stock_levels",
            [
                col("warehouse_id", "bigint"),
                col("product_id", "bigint"),
                col("on_hand", "integer", comment="库存数量"),
            ],
            "库存 / stock on hand per warehouse",
            [fk("warehouse_id", "inventory", "warehouses"), fk("product_id", "sales", "products")],
        ),
    ]


FILLER_WORDS = [
    "audit", "log", "event", "session", "token", "cache", "job", "queue", "batch", "export", "import",
    "report", "snapshot", "metric", "setting", "feature", "flag", "webhook", "delivery", "attempt",
    "archive", "tmp", "staging", "mapping", "translation", "locale", "theme", "widget", "layout", "asset",
]  # fmt: skip
FILLER_CN = ["系统日志", "任务队列", "配置项", "缓存", "导出批次", "报表快照", "审计记录", "会话"]


def synthetic_schema(n: int = 200, seed: int = 7) -> DatabaseSchema:
    rnd = random.Random(seed)
    tables = core_tables()
    seen = {t.name for t in tables}
    while len(tables) < n:
        name = "_".join(rnd.sample(FILLER_WORDS, 2)) + f"_{len(tables)}"
        if name in seen:
            continue
        seen.add(name)
        cols = [
            col("name"),
            col("created_at", "timestamptz"),
            col("payload", "jsonb"),
            col("status", samples=["new", "done"]),
        ]
        cols += [col(f"{rnd.choice(FILLER_WORDS)}_ref", "bigint") for _ in range(rnd.randint(1, 6))]
        comment = rnd.choice([*FILLER_CN, None, "internal bookkeeping"])
        tables.append(T(rnd.choice(["ops", "app", "sys"]), name, cols, comment))
    return DatabaseSchema(
        name="synthetic", tables=tables, schemas=["sales", "hr", "inventory", "ops", "app", "sys"]
    )


@pytest.fixture(scope="module")
def big() -> DatabaseSchema:
    return synthetic_schema()


CASES = [
    (
        "What is the total revenue per product category?",
        {"sales.order_items", "sales.products", "sales.categories"},
    ),
    ("Which customers placed the most orders?", {"sales.customers", "sales.orders"}),
    ("How many orders are backordered?", {"sales.orders"}),
    ("每个部门的员工平均工资是多少？", {"hr.departments", "hr.employees", "hr.salaries"}),
    ("哪个仓库的库存数量最多？", {"inventory.warehouses", "inventory.stock_levels"}),
    ("北京的客户有多少订单？", {"sales.customers", "sales.orders"}),
    ("列出每个商品类别的商品数量", {"sales.products", "sales.categories"}),
]


@pytest.mark.parametrize("question, expected", CASES)
def test_selects_relevant_tables(big: DatabaseSchema, question: str, expected: set[str]) -> None:
    ctx = select_context(big, question, budget=2000)
    assert not ctx.whole and ctx.total_tables == 200
    assert ctx.tokens <= 2000
    top = [s.table.qualified for s in score_tables(big, question)[: len(expected) + 2]]
    assert expected <= set(top), (question, top)
    assert expected <= set(ctx.tables)
    for name in expected:
        assert f"TABLE {name}" in ctx.text


@pytest.mark.parametrize("budget", [300, 800, 2000, 6000])
def test_stays_within_budget(big: DatabaseSchema, budget: int) -> None:
    for q, _ in CASES:
        ctx = select_context(big, q, budget=budget)
        assert ctx.tokens <= budget, (q, budget, ctx.tokens)
        assert ctx.tables  # always something to work with


def test_much_smaller_than_whole_schema(big: DatabaseSchema) -> None:
    whole = estimate_tokens(render_schema(big))
    ctx = select_context(big, CASES[0][0], budget=2000)
    assert whole > 5 * ctx.tokens


def test_fk_neighbour_joins_in(big: DatabaseSchema) -> None:
    # "order lines" names only order_items; its parents come in as neighbours
    ranked = [
        s.table.qualified for s in score_tables(big, "total quantity on order lines") if s.final > 0
    ][:4]
    assert ranked[0] == "sales.order_items"
    assert {"sales.orders", "sales.products"} & set(ranked[1:])


def test_sample_value_mention_scores(big: DatabaseSchema) -> None:
    scored = {s.table.qualified: s for s in score_tables(big, "count the backordered ones")}
    assert scored["sales.orders"].base > 0 and "status" in scored["sales.orders"].mentioned
    assert max(scored.values(), key=lambda s: s.final).table.qualified == "sales.orders"


def test_small_schema_is_rendered_whole() -> None:
    small = DatabaseSchema(name="tiny", tables=core_tables()[:3])
    ctx = select_context(small, "anything", budget=6000)
    assert ctx.whole and len(ctx.tables) == 3 and ctx.text.startswith("DATABASE tiny")


def test_nothing_matches_falls_back_to_connected_tables(big: DatabaseSchema) -> None:
    ctx = select_context(big, "zzz qqq", budget=1000)
    assert ctx.tables and ctx.tokens <= 1000
    assert "sales.products" in ctx.tables[:5]  # most referenced


def test_render_table_full_and_brief() -> None:
    orders = core_tables()[1]
    full = render_table(orders)
    assert "TABLE sales.orders" in full and "customer_id bigint -> sales.customers.id" in full
    assert "'backordered'" in full and "订单总金额" in full and "id bigint PK" in full
    brief = render_table(orders, full=False)
    assert brief.startswith("TABLE sales.orders(") and "customer_id->sales.customers" in brief
    assert "\n" not in brief


def test_rank_databases() -> None:
    hr = DatabaseSchema(name="hr_db", tables=[t for t in core_tables() if t.schema == "hr"])
    shop = DatabaseSchema(name="shop", tables=[t for t in core_tables() if t.schema == "sales"])
    hr.glossary = shop.glossary = GLOSSARY
    assert (
        rank_databases({"hr_db": hr, "shop": shop}, "average salary per department")[0][0]
        == "hr_db"
    )
    assert rank_databases({"hr_db": hr, "shop": shop}, "每个客户的订单数")[0][0] == "shop"


def test_tokenising() -> None:
    assert words("OrderItems order_items categories statuses") == {
        "order",
        "item",
        "category",
        "status",
    }
    t = terms("每个部门的员工")
    assert "部门" in t and "员工" in t and "门的" not in t and "1:部" in t
    assert estimate_tokens("abcd" * 10) == 10
    assert estimate_tokens("部门员工") == 4


def test_functions_offered_when_usable_and_relevant(big: DatabaseSchema) -> None:
    from pg_mcp.core.model import Function

    funcs = [
        Function(
            "sales",
            "lifetime_value",
            "p_customer_id bigint",
            "numeric",
            "sql",
            "stable",
            comment="客户终身价值 of a customer",
        ),
        Function(
            "sales",
            "recalc_totals",
            "",
            "void",
            "plpgsql",
            "volatile",
            comment="lifetime value recalculation",
        ),
        Function("sales", "touch", "", "trigger", "plpgsql", "immutable"),
    ]
    small = DatabaseSchema(name="tiny", tables=core_tables()[:2], functions=funcs)
    whole = select_context(small, "anything", budget=6000).text
    assert "FUNCTION sales.lifetime_value(p_customer_id bigint) -> numeric" in whole
    assert "recalc_totals" not in whole and "touch" not in whole
    big.functions = funcs
    try:
        ctx = select_context(big, "What is the lifetime value of each customer?", budget=2000)
        assert "FUNCTION sales.lifetime_value" in ctx.text and ctx.tokens <= 2000
        assert "FUNCTION" not in select_context(big, "How many warehouses?", budget=2000).text
    finally:
        big.functions = []


def test_glossary_and_fk_roles_bridge_languages() -> None:
    users = T("social", "users", [col("username"), col("country")], "Registered users")
    posts = T(
        "social",
        "posts",
        [col("author_id", "bigint"), col("title")],
        "Blog posts",
        [fk("author_id", "social", "users")],
    )
    reactions = T(
        "social",
        "reactions",
        [col("post_id", "bigint"), col("kind", samples=["like", "love"])],
        "Reactions to posts",
        [fk("post_id", "social", "posts")],
    )
    filler = synthetic_schema(60).tables[10:]
    schema = DatabaseSchema(name="blog", tables=[users, posts, reactions, *filler])
    schema.glossary = GLOSSARY
    # a Chinese question on an English-only schema: the glossary maps 表情/反应 -> reaction
    assert score_tables(schema, "每种表情反应各有多少个？")[0].table.qualified == "social.reactions"
    # "authors" names no table, but posts.author_id -> users makes "author" an alias of users
    top = [
        s.table.qualified for s in score_tables(schema, "Which authors wrote the most posts?")[:2]
    ]
    assert set(top) == {"social.users", "social.posts"}

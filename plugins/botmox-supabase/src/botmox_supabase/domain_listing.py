"""How the Supabase backend lists a collection in PostgreSQL: the statements of
:meth:`~botmox_supabase.domain_records.PostgresRecordRepository.list` and the choice among them.

* The filter ``q`` is a substring test on ``search``, the record's
  :func:`~botmox_core.domain.listing.search_text`. Its matches are counted in the narrow search
  table ``botmox.domain_search`` (migration ``20261205000000``, kept by triggers in every write's
  transaction), on rows about a quarter of the collection table's, through a trigram index
  that narrows the candidates, each then re-checked exactly:

  - a ``q`` with a word of three letters or digits (``farming``) is ``search like '%q%'``
    (wildcards escaped) through the collection's plain trigram index;
  - a ``q`` whose words are that long only once joined (``vm-17``: :data:`WORD_JOINERS`) is
    ``domain_search_words(search) like '%words%'`` (:func:`search_words`, migration
    ``20261206000000``), re-checked by ``strpos(search, q) > 0``;
  - any other ``q`` (``a``, ``%``, ``-``) narrows nothing; it is ``strpos(search, q) > 0``,
    counted in one index-only scan of the collection table's covering btree
    ``(tenant_id, search) include (id)``.
* The order is :func:`~botmox_core.domain.listing.sort_key` as SQL (``botmox.domain_rank``,
  ``domain_number`` and ``domain_text`` of ``data -> field``, then ``id``, all
  ``COLLATE "C"``); bots have an expression index per sort field the web client uses
  (:data:`INDEXED_SORTS`).
* A list is one statement (:func:`list_statement`), sent in the same round trip as
  :data:`LIST_SETTINGS`: the total is counted once (a CTE), and the page is one of two
  branches of a ``union all``, each behind a one-time filter on that count, so only the
  chosen branch runs (none for a page past the end). With ``q`` the page is chosen among the
  matching ids (primary-key reads) or read in sort-index order skipping non-matches,
  whichever reads fewer rows. For an indexed sort the count does not
  collect the ids (collecting 16,000 costs about a fifth of the count): the page among them
  finds them again, which is cheap exactly when they are few. For any other sort the count
  collects them when at most :data:`MAX_MATCH_IDS`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from psycopg import sql

from botmox_core.domain.listing import SORT_FIELD_PATTERN, ListQuery
from botmox_core.domain.records import Collection
from botmox_core.errors import BadRequestError
from botmox_supabase.domain_storage import COLLECTION_TABLES, SEARCH_TABLE, collection_table

__all__ = [
    "FEW_MATCHES_FACTOR",
    "INDEXED_SORTS",
    "LIST_SETTINGS",
    "MAX_MATCH_IDS",
    "SEARCH_INDEX_MAX_BYTES",
    "WORD_JOINERS",
    "WORD_JOINER_SUBSTITUTE",
    "like_pattern",
    "list_statement",
    "search_words",
    "uses_trigrams",
    "uses_word_trigrams",
]

#: Search texts up to this many bytes are in the covering index ``<table>_search_idx``
#: (the migration's partial index predicate; the planner needs the same expression).
SEARCH_INDEX_MAX_BYTES = 1024

#: Sort fields with an expression index per table (migration 20261201000000): a sorted page
#: is read in index order. Without ``q`` (or with many matches) that reads about a page of rows.
#: (``level``: migration 20261206000000.)
INDEXED_SORTS: Mapping[Collection, frozenset[str]] = {
    Collection.BOTS: frozenset(
        {"name", "status", "project_id", "level", "created_at", "updated_at"}
    ),
}

#: The characters ``botmox.domain_search_words`` (migration 20261206000000) replaces, each with
#: :data:`WORD_JOINER_SUBSTITUTE`, so words they join make one word for pg_trgm.
WORD_JOINERS = "-_."
WORD_JOINER_SUBSTITUTE = "q"

#: Per-row cost of choosing a page among the matching ids, against reading in sort-index order
#: (both read a row per step): parameter ``factor`` of :func:`list_statement`.
FEW_MATCHES_FACTOR = 1.0

#: For a sort without an index, the count collects the matching ids when there are at most this
#: many (else every match is read with the filter and sorted).
MAX_MATCH_IDS = 5000

#: Set for the unit's transaction before a list: a list reads one tenant's rows, a few
#: milliseconds of work, where starting parallel workers or JIT-compiling costs more than it saves;
#: and where a connection prepares statements on the server, each list is planned for its own
#: parameters (a generic plan cannot tell a rare ``q`` from a broad one, nor which page branch
#: runs).
LIST_SETTINGS = (
    "select set_config('max_parallel_workers_per_gather', '0', true),"
    " set_config('jit', 'off', true), set_config('plan_cache_mode', 'force_custom_plan', true)"
)

# A run of three ASCII letters or digits: a trigram pg_trgm extracts from a LIKE pattern without
# word-boundary padding (a padded one such as " 17" of "vm-17" matches every word starting "17").
_TRIGRAM_WORD = re.compile(r"[a-z0-9]{3}", re.ASCII)


def uses_trigrams(q: str) -> bool:
    """Whether ``q`` (normalised, ASCII-lower-cased) is found through the trigram index: it has
    a word of three letters or digits, so its trigrams narrow the tenant's rows."""
    return _TRIGRAM_WORD.search(q) is not None


def search_words(text: str) -> str:
    """``text`` with every one of :data:`WORD_JOINERS` replaced by
    :data:`WORD_JOINER_SUBSTITUTE`, as ``botmox.domain_search_words`` does in SQL: a map from
    character to character, so ``search_words(q)`` is in ``search_words(search)`` whenever
    ``q`` is in ``search``."""
    for joiner in WORD_JOINERS:
        text = text.replace(joiner, WORD_JOINER_SUBSTITUTE)
    return text


def uses_word_trigrams(q: str) -> bool:
    """Whether ``q`` is found through the words trigram index: it has no word of three letters
    or digits itself (:func:`uses_trigrams`), but has one once its joiners are replaced
    (``vm-17`` is ``vmq17``)."""
    return not uses_trigrams(q) and uses_trigrams(search_words(q))


def like_pattern(q: str) -> str:
    """``q`` as a LIKE pattern matching any text that contains it (``\\``, ``%``, ``_``
    escaped; LIKE's default escape character is the backslash)."""
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _order_by(query: ListQuery) -> sql.Composable:
    """The ORDER BY list of :func:`~botmox_core.domain.listing.sort_key` (reversed for desc)."""
    direction = sql.SQL(" desc" if query.descending else "")
    if query.sort is None or query.sort == "id":
        return sql.SQL("id{}").format(direction)
    if not SORT_FIELD_PATTERN.fullmatch(query.sort):
        raise BadRequestError(f"cannot sort by {query.sort[:80]!r}")
    field = sql.Literal(query.sort)  # a literal, so an expression index on the field matches
    parts = [
        sql.SQL("botmox.domain_rank(data -> {})").format(field),
        sql.SQL("botmox.domain_number(data -> {})").format(field),
        sql.SQL('botmox.domain_text(data -> {}) collate "C"').format(field),
        sql.SQL("id"),
    ]
    return sql.SQL(", ").join(sql.SQL("{}{}").format(part, direction) for part in parts)


def _filter(q: str) -> sql.SQL:
    """The filter ``q`` on ``search`` as an exact test: a LIKE the trigram index serves
    (parameter ``pattern``), or, for a ``q`` whose trigrams narrow nothing, ``strpos``
    (parameter ``q``; the same substring test), which the trigram index cannot serve, so the
    planner reads the covering index instead of re-checking every row of the tenant found
    through the trigram index."""
    if uses_trigrams(q):
        return sql.SQL("search like %(pattern)s")
    return sql.SQL("strpos(search, %(q)s) > 0")


def _narrowed(q: str) -> sql.Composable:
    """The filter ``q`` in the search table: :func:`_filter`, preceded for a ``q`` found
    through the words trigram index by its narrowing LIKE (parameter ``words``)."""
    if uses_word_trigrams(q):
        return sql.SQL("botmox.domain_search_words(search) like %(words)s and {}").format(
            _filter(q)
        )
    return _filter(q)


def _matching(collection: Collection, q: str) -> sql.Composed:
    """The ids of the tenant's rows matching ``q``: from the narrow search table
    (:data:`~botmox_supabase.domain_storage.SEARCH_TABLE`) through one of the collection's
    trigram indexes, or from the collection table's covering index and the rare rows with
    longer search texts (two partial indexes, so the first part is an index-only scan)."""
    if uses_trigrams(q) or uses_word_trigrams(q):
        return sql.SQL(
            "select id from {search} where tenant_id = %(tenant)s and collection = {name}"
            " and {filter}"
        ).format(
            search=sql.Identifier("botmox", SEARCH_TABLE),
            name=sql.Literal(COLLECTION_TABLES[Collection(collection)]),
            filter=_narrowed(q),
        )
    table = collection_table(collection)
    return sql.SQL(
        "select id from {table} where tenant_id = %(tenant)s"
        " and octet_length(search) <= {max} and {filter}"
        " union all select id from {table} where tenant_id = %(tenant)s"
        " and octet_length(search) > {max} and {filter}"
    ).format(table=table, filter=_filter(q), max=sql.Literal(SEARCH_INDEX_MAX_BYTES))


def _tenant_rows(collection: Collection) -> sql.Composed:
    """How many rows the tenant (parameter ``tenant``) has in ``collection`` as the statistics
    estimate it (to choose how to read the page): ``botmox.domain_tenant_rows`` (migration
    ``20261208000000``), the table's rows times the tenant's share among the most common values
    of ``tenant_id``, or all the table's rows for a tenant not among them (an upper bound, which
    can only favour reading the matching ids). A function, so its catalog query is planned once
    per connection instead of on every list."""
    table = COLLECTION_TABLES[Collection(collection)]
    return sql.SQL("botmox.domain_tenant_rows({table}, %(tenant)s)").format(
        table=sql.Literal(table)
    )


def list_statement(collection: Collection, query: ListQuery) -> sql.Composed:
    """The one statement of a list (parameters ``tenant``, ``pattern``, ``words``, ``q``,
    ``max_ids``, ``factor``, ``limit``, ``offset``): a row ``(null, null, total)``, then the
    page's rows ``(id, data, null)`` in order.

    The total is counted once (a CTE); the page is a branch of a ``union all`` behind a
    one-time filter on that count, so only the chosen branch runs, and a page past the end
    runs none. Without ``q``: the tenant's rows in order (sort index or primary key). With
    ``q`` (``factor`` is :data:`FEW_MATCHES_FACTOR`):

    * an indexed sort: among the matching ids (about ``matches`` rows read) when
      ``matches * factor <= (offset + limit) * rows / matches`` (``rows`` the tenant's rows as
      the statistics estimate them; reading in sort-index order skipping non-matches reads
      about that many), found again in the search table (cheap exactly when they are few;
      collecting them while counting costs about a fifth of a broad count); else in
      sort-index order, with ``q``'s exact test on each row;
    * any other sort: among the matching ids the count collected when at most ``max_ids``
      (primary-key reads, then sorted), else every match read with the filter and sorted.
    """
    table, order = collection_table(collection), _order_by(query)
    page = sql.SQL(
        "(select id, data, null::bigint from {table} where tenant_id = %(tenant)s and {where}"
        " and (select {chosen} from counted) order by {order} limit %(limit)s offset %(offset)s)"
    )
    if query.q is None:
        return sql.SQL(
            "with counted as (select count(*) as matches from {table}"
            ' where tenant_id = %(tenant)s) select null::text collate "C", null::jsonb, matches'
            " from counted union all {page}"
        ).format(
            table=table,
            page=page.format(
                table=table,
                where=sql.SQL("true"),
                chosen=sql.SQL("matches > %(offset)s"),
                order=order,
            ),
        )
    matching = _matching(collection, query.q)
    indexed = query.sort in (None, "id") or query.sort in INDEXED_SORTS.get(
        Collection(collection), frozenset()
    )
    in_order: sql.Composable
    counted: sql.Composable
    among: sql.Composable
    if indexed:
        # matches * factor > (offset + limit) * rows / matches: reading in order reads fewer
        in_order = sql.SQL(
            "matches * %(factor)s::float8 > (%(offset)s + %(limit)s)::float8"
            " * greatest(tenant_rows, matches) / greatest(matches, 1)"
        )
        counted = sql.SQL("count(*) as matches, {rows} as tenant_rows").format(
            rows=_tenant_rows(collection)
        )
        among = sql.SQL("array({})").format(matching)
    else:
        in_order = sql.SQL("ids is null")
        counted = sql.SQL(
            "count(*) as matches, case when count(*) <= %(max_ids)s then array_agg(id) end as ids"
        )
        among = sql.SQL("(select ids from counted)::text[]")
    return sql.SQL(
        "with counted as (select {counted} from ({matching}) as matching)"
        ' select null::text collate "C", null::jsonb, matches from counted'
        " union all {in_order} union all {among}"
    ).format(
        counted=counted,
        matching=matching,
        in_order=page.format(
            table=table,
            where=_filter(query.q),
            chosen=sql.SQL("matches > %(offset)s and {}").format(in_order),
            order=order,
        ),
        among=page.format(
            table=table,
            where=sql.SQL("id = any({})").format(among),
            chosen=sql.SQL("matches > %(offset)s and not ({})").format(in_order),
            order=order,
        ),
    )

-- botmox: domain data search, continued (issue 11): a `q` whose words are joined by punctuation
-- (`vm-17`, `bot_4`, `10.0.0`) found through a trigram index too, and bots sorted by `level`
-- in index order.
--
-- * pg_trgm splits text into words at every character that is not a letter or digit, and a
--   LIKE pattern's words shorter than three characters (`vm`, `17`) give only trigrams padded
--   at the word boundary (`vm `, ` 17`), which nearly every bot has (a `vm-N` name, a timestamp
--   1790...). So such a `q` narrowed nothing, and was a substring test on every row of the tenant
--   (one index-only scan of the covering btree, 20-23 ms per 100,000 bots).
-- * botmox.domain_search_words(search) replaces each of the three joiners - _ . with the letter
--   q: `vm-17` becomes the one word `vmq17`, whose trigrams (vmq, mq1, q17) are selective. It
--   maps character to character, the same for the text and for `q`
--   (botmox_supabase.domain_listing.search_words), so a record containing `q` always contains
--   words(q) in words(search): the index only narrows the candidates, and the list re-checks
--   each with the exact substring test.
-- * The bitmap scan re-computes the expression for every candidate it re-checks, so it must be
--   cheap: one replace() is 0.1 us per search text (a regular expression 2 us, translate() 5
--   us and more). Measured on 100,000 bots of a tenant: `vm-17` (2,760 matches) is counted in
--   7 ms instead of 23 ms; a broad `vm-1` (27,563) costs 31 ms this way with three joiners
--   (27 ms with one, 40 ms with seven) against 27-39 ms for the scan it replaces, which is why
--   the joiners stop at these three, the ones ids, names, versions and addresses use most.
-- * One such index per collection on botmox.domain_search, partial on `collection`, tenant_id
--   in it through btree_gin, as the plain trigram indexes of 20261205000000; those stay and
--   serve every `q` with a word of three letters or digits (their re-check is the plain LIKE).
--   The server uses this index only for a `q` without such a word (see domain_listing).
-- * bots_sort_level_idx: `level` joins the bots' sort indexes of 20261201000000 (the web client
--   sorts its bot table by level), so a page sorted by level is read in index order.
-- * The function is immutable and a single SQL expression over pg_catalog.replace with no SET
--   clause, so the planner inlines it and the index's expression matches the query's. Whoever
--   writes domain_search (the collection tables' triggers, as the writer) needs EXECUTE on it.

create or replace function botmox.domain_search_words(search text) returns text
  language sql immutable parallel safe
  as $$
    select pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(
      search, '-', 'q'), '_', 'q'), '.', 'q')
  $$;

revoke all on function botmox.domain_search_words(text) from public, anon;
grant execute on function botmox.domain_search_words(text) to authenticated, service_role;

do $$
declare
  t text;
  trgm_schema text;
begin
  select n.nspname into strict trgm_schema
    from pg_catalog.pg_extension e join pg_catalog.pg_namespace n on n.oid = e.extnamespace
   where e.extname = 'pg_trgm';
  foreach t in array array[
    'resources_licenses', 'resources_proxies', 'resources_subscriptions', 'workspace_notes',
    'workspace_calendar_events', 'workspace_kanban_tasks', 'bots', 'finance_operations'
  ] loop
    execute format(
      'create index if not exists %I on botmox.domain_search'
      ' using gin (tenant_id, botmox.domain_search_words(search) %I.gin_trgm_ops)'
      ' where collection = %L',
      'domain_search_' || t || '_words_idx', trgm_schema, t
    );
  end loop;
end
$$;

create index if not exists bots_sort_level_idx on botmox.bots (
  tenant_id, botmox.domain_rank(data -> 'level'), botmox.domain_number(data -> 'level'),
  botmox.domain_text(data -> 'level') collate "C", id
);

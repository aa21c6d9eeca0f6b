-- pgtrail vault, part 5: which columns an UPDATE left unchanged without sending their values
-- (TOASTed values): absent from new_values, and never to be read as null. Idempotent.
select vault.index_if_table('sat_row_change',
    'alter table vault.sat_row_change add column if not exists unchanged_toast text[] not null default ''{}''');

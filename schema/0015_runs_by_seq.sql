-- Runs newest first, a page at a time (`serve`'s runs table): a page of 50 out of
-- 100,000 runs reads 50 rows of this index, not the whole table and a sort.
CREATE INDEX runs_by_seq ON runs(seq);

-- cto-ledger schema 8: the kernel sandbox each Stage 2 run's provider ran in, as the
-- run event records it ("landlock ABI 7, network none", or "off (--no-sandbox)");
-- NULL for runs recorded before there was one, or whose provider never started.
ALTER TABLE runs ADD COLUMN sandbox TEXT;

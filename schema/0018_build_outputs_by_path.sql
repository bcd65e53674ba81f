-- cto-ledger schema 18: build outputs found by path, for a build to ask what its output
-- was last time (a rebuild that writes the same bytes is then not copied again).

CREATE INDEX build_outputs_by_path ON build_outputs(path);

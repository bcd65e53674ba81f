-- cto-ledger schema 9: what a model admission admits beyond its PROVIDER/MODEL name:
-- the endpoint it is served at (and the API spoken there), or for the harness's
-- scripted model the exact script (its object: an edited script is not admitted).
ALTER TABLE model_admissions ADD COLUMN endpoint TEXT;
ALTER TABLE model_admissions ADD COLUMN api TEXT;
ALTER TABLE model_admissions ADD COLUMN script_object TEXT;
ALTER TABLE model_admissions ADD COLUMN script_path TEXT;

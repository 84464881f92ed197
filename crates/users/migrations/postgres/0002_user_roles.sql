-- The roles an account holds, space-separated and sorted ("admin fulfilment").
ALTER TABLE users ADD COLUMN roles TEXT NOT NULL DEFAULT '';

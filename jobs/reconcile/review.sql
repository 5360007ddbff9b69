-- The review command's one write (jobs/reconcile/review.py); the queue itself is read with the
-- dashboard's queries/reconciliation.sql, so the command and the page list the same items.

-- name: resolve_item
-- Only an open manual item can be resolved, once; it stays in the table as history.
UPDATE reconciliation_items
SET resolved_at = :now, resolved_by = :resolved_by, resolution_note = :note
WHERE id = :item_id AND action = 'manual_review' AND resolved_at IS NULL AND NOT dry_run
RETURNING id

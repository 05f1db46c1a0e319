-- Why a history point was recorded when it was not an assessment write: 'catalogChange' (the
-- counters were rebuilt for another built-in catalogue) or 'repair' (`securescore verify
-- --repair` rewrote drifted counters). NULL for ordinary writes.
ALTER TABLE score_history ADD COLUMN reason TEXT;

-- step: a new lead arrives from a Lead Ads form
INSERT INTO leads (full_name, email, phone, fb_lead_id, profile) VALUES ('Zoë Müller', 'zoe@example.de', '+49 30 1234567', '1234567890123459', '{"name": {"first": "Zoë", "last": "Müller"}}');
-- step: Jane is contacted by sales
UPDATE leads SET status = 'contacted', updated_at = now() WHERE id = 1;
-- step: a note on Jane's lead (no stage change: nothing is sent)
INSERT INTO notes (lead_id, body) VALUES (1, 'called, interested in the premium plan');
UPDATE leads SET updated_at = now() WHERE id = 1;
-- step: Jane qualifies
UPDATE leads SET status = 'qualified', updated_at = now() WHERE id = 1;
-- step: Bob (email only in contacts) jumps from new to won: the skipped stages are filled in
UPDATE leads SET status = 'won', updated_at = now() WHERE id = 3;
-- step: Valéry's lead is archived (filtered out: nothing is sent)
UPDATE leads SET deleted = true WHERE id = 2;

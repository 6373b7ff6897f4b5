-- A small sample CRM: leads imported from Meta Lead Ads (fb_lead_id), their
-- contact details partly in a separate table, and a pipeline of stages.
CREATE TABLE leads (
  id          bigserial PRIMARY KEY,
  full_name   text NOT NULL,
  email       text,
  phone       text,
  fb_lead_id  text,                       -- filled by the Lead Ads import
  status      text NOT NULL DEFAULT 'new',
  profile     jsonb NOT NULL DEFAULT '{}',
  deleted     boolean NOT NULL DEFAULT false,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE leads REPLICA IDENTITY FULL;   -- before images: needed to see stage transitions

CREATE TABLE contacts (
  id       bigserial PRIMARY KEY,
  lead_id  bigint NOT NULL REFERENCES leads(id),
  email    text NOT NULL
);

CREATE TABLE notes (
  id       bigserial PRIMARY KEY,
  lead_id  bigint NOT NULL REFERENCES leads(id),
  body     text NOT NULL
);

INSERT INTO leads (full_name, email, phone, fb_lead_id, status, profile) VALUES
  ('Jane Doe',      ' Jane.Doe@Example.com', '+1 (555) 123-4567', '1234567890123456', 'new',       '{"name": {"first": "Jane", "last": "Doe"}, "city": "Austin"}'),
  ('Valéry Dupont', 'valery@example.fr',     '+33 6 12 34 56 78', '1234567890123457', 'contacted', '{"name": {"first": "Valéry", "last": "Dupont"}, "city": "Paris"}'),
  ('Bob Smith',     NULL,                    NULL,                '1234567890123458', 'new',       '{"name": {"first": "Bob", "last": "Smith"}}');
INSERT INTO contacts (lead_id, email) VALUES (3, 'bob.smith@example.com');

-- Reference data the conform and validate steps look up: the hub's event
-- taxonomy, its statuses, and per-platform mappings onto them.

CREATE TABLE core.event_category (
    code        text PRIMARY KEY,
    name        text NOT NULL,
    parent_code text REFERENCES core.event_category,
    version     text NOT NULL
);
COMMENT ON TABLE core.event_category IS 'the hub''s event taxonomy; one row per category';

CREATE TABLE core.event_status (
    status      text PRIMARY KEY,
    name_zh     text NOT NULL,
    sort_order  integer NOT NULL,
    description text NOT NULL
);
COMMENT ON TABLE core.event_status IS 'the hub''s unified event statuses';

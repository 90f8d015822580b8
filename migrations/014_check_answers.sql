-- What a plan's check step heard from its judgement service about each user: the answer
-- (the user's result as the service gave it), or why there is none. One row per user, run
-- and node: a page asked again after a crash keeps the first answer.
CREATE TABLE check_answers (
    run_id   text        NOT NULL,
    node_id  text        NOT NULL,
    user_id  text        NOT NULL,
    service  text        NOT NULL,
    outcome  text        NOT NULL CHECK (outcome IN ('answered', 'missing', 'failed')),
    answer   jsonb,
    reason   text,
    asked_at timestamptz NOT NULL,
    PRIMARY KEY (run_id, node_id, user_id)
);

-- Winning paths (an ab_split's winner): the decision, made once per run and split node by
-- the first shard that asks, so every shard sends the rest of its users the same way.
CREATE TABLE winners (
    run_id      text        NOT NULL,
    node_id     text        NOT NULL,
    arm         text        NOT NULL,
    significant boolean     NOT NULL,
    metric      text        NOT NULL,
    figures     jsonb       NOT NULL,
    decided_at  timestamptz NOT NULL,
    PRIMARY KEY (run_id, node_id)
);

-- Users sent to the winner after the decision are recorded apart: the arms' statistics
-- count only the users the test split.
ALTER TABLE assignments ADD COLUMN by_winner boolean NOT NULL DEFAULT false;

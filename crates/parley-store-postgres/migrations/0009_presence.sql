-- Parley schema v11: live connections shared by every node, for reachability. One row per
-- (account, service, identity, node) with the node's connection count for that user and an
-- expiry that the node's heartbeat pushes forward. A user is online while some row of theirs
-- has connections > 0 and expires_at (epoch microseconds) in the future; the rows of a node that
-- died without cleanup stop counting at their expiry and are swept by any node.
-- Its twin in the other backend has the same file name (checked by a test).
-- Never edit this file once released: sqlx checksums applied migrations.

create table presence (
    account_sid text not null,
    service_sid text not null,
    identity text not null,
    node_id text not null,
    connections bigint not null,
    expires_at bigint not null,
    primary key (account_sid, service_sid, identity, node_id),
    foreign key (service_sid, account_sid) references services (sid, account_sid)
        on delete cascade
);

create index presence_node on presence (node_id);
create index presence_expires_at on presence (expires_at);

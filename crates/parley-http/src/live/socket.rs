//! `GET /v3/wsconnect`: the twilsock connection. (Skeleton: filled in by the transport work.)

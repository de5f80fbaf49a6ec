//! Push delivery (outbox worker, APNs/FCM senders). Not built yet: see issue "Push delivery".

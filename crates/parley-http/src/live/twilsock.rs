//! twilsock v3 framing (sdk-transport.md §1). (Skeleton: filled in by the transport work.)

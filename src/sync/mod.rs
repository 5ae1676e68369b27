//! The rules of inbound sync (CONTRACT §5.6), free of HTTP and AMQP types.

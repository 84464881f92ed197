"""Order events from RabbitMQ, decoded from the contract alone: the consumer
of docs/from-another-language.md, bounded for a check.

    PYTHONPATH=gen/python python clients/python/consume_orders.py AMQP_URL PREFIX COUNT

Binds a queue of its own (PREFIX + "python-example"), prints "bound", then
prints each event (id, kind, the fields a consumer reads) until COUNT have
arrived, acking each after it is printed.
"""

import sys

import pika
from shop.events.v1 import events_pb2
from shop.orders.v1 import orders_pb2

KINDS = {
    "shop.events.v1.OrderCreated": events_pb2.OrderCreated,
    "shop.events.v1.OrderCancelled": events_pb2.OrderCancelled,
    "shop.events.v1.OrderStatusChanged": events_pb2.OrderStatusChanged,
}


def describe(kind: str, event) -> str:
    if kind.endswith("OrderCreated"):
        return f"total {event.total_minor} minor units of {event.currency}"
    if kind.endswith("OrderStatusChanged"):
        return f"{orders_pb2.OrderStatus.Name(event.old_status)} -> {orders_pb2.OrderStatus.Name(event.new_status)}"
    return f"reason {event.reason!r}, {len(event.items)} line(s) released"


def main(url: str, prefix: str, count: int) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    queue = prefix + "python-example"
    channel.queue_declare(queue, durable=True)
    channel.queue_bind(queue, prefix + "events", routing_key="shop.events.v1.#")
    print("bound", flush=True)
    seen = 0
    for method, properties, body in channel.consume(queue, inactivity_timeout=30):
        if method is None:
            raise SystemExit(f"only {seen} of {count} events arrived")
        assert properties.content_type == "application/x-protobuf", properties
        event = KINDS[method.routing_key].FromString(body)
        assert properties.message_id == event.event_id, (properties.message_id, event.event_id)
        traced = "traceparent" in (properties.headers or {})
        print(f"{method.routing_key} order {event.order_id}: {describe(method.routing_key, event)}; traced {traced}", flush=True)
        channel.basic_ack(method.delivery_tag)
        seen += 1
        if seen == count:
            break
    channel.cancel()
    channel.queue_delete(queue)
    connection.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))

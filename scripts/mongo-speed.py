#!/usr/bin/env python3
"""The MongoDB-wire server's own speed, apart from meshwork: for two seconds
each, a document read by id and an atomic conditional update of it (what a
stock reservation asks), one after another from one client. Prints ops/s.

    scripts/mongo-speed.py mongodb://127.0.0.1:27017
"""
import sys
import time
import uuid

import pymongo

client = pymongo.MongoClient(sys.argv[1], serverSelectionTimeoutMS=3000)
collection = client[f"speed{uuid.uuid4().hex[:8]}"]["products"]
collection.insert_one({"_id": "p", "stock": 1_000_000_000})


def rate(operation):
    count, started = 0, time.monotonic()
    while time.monotonic() - started < 2.0:
        operation()
        count += 1
    return count / (time.monotonic() - started)


reads = rate(lambda: collection.find_one({"_id": "p"}))
updates = rate(lambda: collection.update_one({"_id": "p", "stock": {"$gte": 1}}, {"$inc": {"stock": -1}}))
client.drop_database(collection.database.name)
print(f"{reads:.0f} {updates:.0f}")

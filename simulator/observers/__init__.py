"""Observers: where the arrival log comes from (embedded collector, AMQP trigger, HTTP webhook)."""

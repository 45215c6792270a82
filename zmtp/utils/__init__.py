"""Helpers with pyzmq's ``zmq.utils`` names."""

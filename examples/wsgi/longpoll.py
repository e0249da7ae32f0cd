#!/usr/bin/env python3
"""
A plain WSGI app (no framework) behind kometa proxy, served by wsgiref:

    /messages?since=<id>   a long-poll: kometa holds it (Grip-Hold: response)
                           until something is published on 'messages'.
    anything else          an ordinary page, passed through untouched.

Run: python3 longpoll.py 8000
"""
import json
import sys
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, make_server


def app(environ, start_response):
    path = environ.get('PATH_INFO', '/')
    if path == '/messages':
        query = parse_qs(environ.get('QUERY_STRING', ''))
        headers = [
            ('Content-Type', 'application/json'),
            ('Grip-Hold', 'response'),
            ('Grip-Channel', 'messages' + ('; prev-id=' + query['since'][0] if 'since' in query else '')),
            ('Grip-Timeout', query.get('timeout', ['20'])[0]),
        ]
        start_response('200 OK', headers)
        return [json.dumps({'messages': []}).encode()]
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [('plain page at %s, seen from %s\n' % (path, environ.get('HTTP_X_FORWARDED_FOR', '?'))).encode()]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


if __name__ == '__main__':
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    with make_server('127.0.0.1', port, app, handler_class=QuietHandler) as server:
        server.serve_forever()

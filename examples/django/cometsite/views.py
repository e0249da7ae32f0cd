"""
The seed's deferred views (2007), ported to instructions for kometa proxy.

In 2007 a custom libevent WSGI server ran `defer_in_time(response, 1,
'/stage/')`. Here Django answers at once, as every WSGI view does, and a
`Kometa-Defer` header asks kometa to wait a second and request the next
URL, appending its body to the same chunked response. Status and headers
come from the first response only, as in the seed. The stage number travels
in the URL (the seed kept it on the response object).
"""
import json
import urllib.request

from django.conf import settings
from django.http import HttpResponse, JsonResponse


def defer_in_time(response, seconds, url):
    response['Kometa-Defer'] = '%s; next="%s"' % (seconds, url)
    return response


# Url handler of the basic url.
# Headers only from this response are used.
def comet_main(request):
    response = HttpResponse('First content<br /> ')
    return defer_in_time(response, 1, '/stage/?stage=1')  # after one second run the '/stage/' url handler


def comet_stage(request):
    stage = int(request.GET.get('stage', '1'))
    response = HttpResponse('stage%i<br /> ' % stage)
    if stage < 3:  # loop here three times
        url = '/stage/?stage=%i' % (stage + 1)
    else:
        url = '/stage_last/?stage=%i' % (stage + 1)  # then end the connection
    return defer_in_time(response, 1, url)


def comet_stage_last(request):
    # no magic here. just a regular response
    stage = int(request.GET.get('stage', '4'))
    return HttpResponse('last_stage%i<br /> ' % stage)


def news_wait(request):
    """A long-poll: held by kometa until something is published on 'news' (GRIP)."""
    response = JsonResponse({'news': None})  # what the client gets if nothing comes in time
    response['Grip-Hold'] = 'response'
    response['Grip-Channel'] = 'news'
    response['Grip-Timeout'] = request.GET.get('timeout', '25')
    return response


def news_post(request):
    """Publish to everyone waiting: one HTTP call to kometa's control port, in Pushpin's format."""
    body = json.dumps({'news': request.POST.get('text', '')})
    item = {'channel': 'news', 'formats': {'http-response': {'headers': {'Content-Type': 'application/json'}, 'body': body}}}
    publish = urllib.request.Request(
        settings.KOMETA_CONTROL_URL + '/publish/',
        data=json.dumps({'items': [item]}).encode(),
        headers={'Content-Type': 'application/json'},
        method='POST',
    )
    with urllib.request.urlopen(publish, timeout=5) as answer:
        stored = json.load(answer)
    return JsonResponse({'published': stored['items'][0]['id']})

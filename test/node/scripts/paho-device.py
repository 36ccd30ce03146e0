"""A device script as users write them with Eclipse Paho's Python client (Debian's python3-paho-mqtt, 1.6.x).

Run by test/node/mqtt-paho-python.test.ts with Debian's /usr/bin/python3:
    paho-device.py '<json>'
The JSON names the scenario and where to connect; the script prints one JSON line with what it saw.
"""
import json
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

args = json.loads(sys.argv[1])
VERSIONS = {3: mqtt.MQTTv31, 4: mqtt.MQTTv311, 5: mqtt.MQTTv5}


def client(client_id, version=4, transport='tcp', **kw):
    c = mqtt.Client(client_id=client_id, protocol=VERSIONS[version], transport='websockets' if transport == 'ws' else 'tcp', **kw)
    c.username_pw_set(args['user'], args['password'])
    if transport == 'ws':
        c.ws_set_options(path='/mqtt')
    if transport == 'tls':
        c.tls_set(ca_certs=args['ca'])
    return c


def port(transport):
    return args['ports'][transport]


def wait(pred, seconds):
    end = time.time() + seconds
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def resend_refused():
    """A QoS 1/2 publish the platform refuses for good, then a good one, from a 3.1.1 device that
    reconnects by itself (loop_start): does the good one ever get through?"""
    c = client('py-resend', 4, clean_session=args['clean_session'])
    c.reconnect_delay_set(1, 1)
    connects, acked = [], []
    c.on_connect = lambda c, u, f, rc: connects.append(rc)
    c.on_publish = lambda c, u, mid: acked.append(mid)
    c.connect('127.0.0.1', port('tcp'), 30)
    c.loop_start()
    wait(lambda: connects, 5)
    bad = c.publish(args['bad_topic'], args['bad_payload'], qos=args['qos'])
    good = c.publish(args['good_topic'], json.dumps([{'n': 'temp', 'v': 21.5}]), qos=1)
    wait(lambda: good.mid in acked, args['seconds'])
    time.sleep(0.3)
    c.disconnect()
    c.loop_stop()
    return {'connects': len(connects), 'bad_acked': bad.mid in acked, 'good_acked': good.mid in acked}


def roundtrip():
    """Subscribe with a wildcard, publish SenML at QoS 0, 1 and 2 and a retained message, on one
    transport and protocol version; a second client then gets the retained one."""
    transport, version, topic = args['transport'], args['version'], args['topic']
    got, retained = [], []
    subacked = threading.Event()
    c = client(f'py-rt-{transport}-{version}', version, transport)
    c.on_message = lambda c, u, m: got.append([m.topic, m.payload.decode(), m.qos, bool(m.retain)])
    c.on_subscribe = lambda c, u, mid, granted, *p: subacked.set()
    c.connect('127.0.0.1', port(transport), 30)
    c.loop_start()
    c.subscribe(topic + '/#', 2)
    subacked.wait(5)
    infos = [c.publish(f'{topic}/lab/temp', json.dumps([{'n': 'temp', 'v': q}]), qos=q) for q in (0, 1, 2)]
    infos.append(c.publish(f'{topic}/status', 'online', qos=1, retain=True))
    for i in infos:
        i.wait_for_publish(5)
    wait(lambda: len(got) >= 4, 5)
    c.disconnect()
    c.loop_stop()
    r = client(f'py-rt2-{transport}-{version}', version, transport)
    r.on_message = lambda c, u, m: retained.append([m.topic, m.payload.decode(), m.qos, bool(m.retain)])
    r.connect('127.0.0.1', port(transport), 30)
    r.loop_start()
    r.subscribe(topic + '/status', 1)
    wait(lambda: retained, 5)
    r.disconnect()
    r.loop_stop()
    return {'got': got, 'retained': retained}


print(json.dumps({'resend-refused': resend_refused, 'roundtrip': roundtrip}[args['scenario']]()))

// cbor-x catches this and decodes in pure JS. See package.json.
throw new Error('cbor-extract native acceleration is not installed');

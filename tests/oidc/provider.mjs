// A real OpenID Connect provider for the identity tests: oidc-provider on loopback, issuing client_credentials JWT access
// tokens (RFC 9068, typ at+jwt) for the resource a client names (RFC 8707). Each start reuses the keys in KEYS_FILE;
// ROTATE=1 makes a new signing key first (the old one stays published), as an IdP rotation does.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const keysFile = process.env.KEYS_FILE;
const issuer = `http://127.0.0.1:${port}`;

let keys = existsSync(keysFile) ? JSON.parse(readFileSync(keysFile, 'utf8')) : [];
if (keys.length === 0 || process.env.ROTATE === '1') {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  keys = [{ ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' }, ...keys];
  writeFileSync(keysFile, JSON.stringify(keys), { mode: 0o600 });
}

const clients = JSON.parse(process.env.CLIENTS).map(({ id, secret }) => ({
  client_id: id,
  client_secret: secret,
  grant_types: ['client_credentials'],
  redirect_uris: [],
  response_types: [],
  token_endpoint_auth_method: 'client_secret_basic',
}));

const provider = new Provider(issuer, {
  clients,
  jwks: { keys },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => process.env.RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource) => ({
        scope: 'gatehouse.query gatehouse.read',
        audience: resource,
        accessTokenFormat: 'jwt',
        accessTokenTTL: 600,
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
});

provider.listen(port, '127.0.0.1', () => console.log(`ready ${issuer} kid=${keys[0].kid}`));

// The triad portal's only script. It signs in the browser: the key file a
// user chooses is read here, its ed25519 seed imported into WebCrypto as
// a non-extractable key, and only signatures are sent to the portal.
// Neither the key file nor the seed ever leaves this page.
'use strict';

// The DER prefix of a PKCS#8 ed25519 private key (RFC 8410): the 32-byte
// seed follows it.
const PKCS8_ED25519_PREFIX = '302e020100300506032b657004220420';
const KEY_FILE_HEADER = 'triad-user-key v1';

function hexToBytes(hex) {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) {
    throw new Error('not hex');
  }
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) {
    bytes[i] = parseInt(hex.substr(2 * i, 2), 16);
  }
  return bytes;
}

function bytesToHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

// Parses a triad key file as crates/auth/src/key.rs does: the header
// first, then one `secret` and one `public` line; blank lines and lines
// starting with `#` are ignored.
async function readKeyFile(input) {
  const file = input.files && input.files[0];
  if (!file) {
    throw new Error('Choose your triad key file first.');
  }
  if (file.size > 4096) {
    throw new Error('That file is too large to be a triad key file.');
  }
  const lines = (await file.text())
    .split('\n')
    .map((line) => line.replace(/\r$/, ''))
    .filter((line) => line.trim() !== '' && !line.startsWith('#'));
  if (lines.length === 0 || lines[0].trimEnd() !== KEY_FILE_HEADER) {
    throw new Error('That is not a triad key file (made by `triad keygen`).');
  }
  let secret = null;
  let publicKey = null;
  for (const line of lines.slice(1)) {
    const [field, value] = line.trimEnd().split(' ');
    if (field === 'secret' && secret === null && /^[0-9a-fA-F]{64}$/.test(value || '')) {
      secret = value;
    } else if (field === 'public' && publicKey === null && /^[0-9a-fA-F]{64}$/.test(value || '')) {
      publicKey = value.toLowerCase();
    } else {
      throw new Error('The key file is damaged (an unexpected line).');
    }
  }
  if (secret === null || publicKey === null) {
    throw new Error('The key file is damaged (a line is missing).');
  }
  return { secret, publicKey };
}

// The signature domains this page signs in. A login signature must never
// be usable as an approval (or a node request): the bytes must start with
// the domain of what the user clicked, checked here before signing, so
// that a fault in the server cannot turn one into the other.
const LOGIN_DOMAIN = 'triad/portal-login/v1';
const APPROVAL_DOMAIN = 'triad/approval/v1';

function domainHex(domain) {
  return Array.from(new TextEncoder().encode(domain), (b) => b.toString(16).padStart(2, '0')).join('');
}

// Signs the bytes given as hex, which must be in `domain`, with the key
// file's seed.
async function signHex(keyFile, toSignHex, domain) {
  if (!toSignHex.toLowerCase().startsWith(domainHex(domain))) {
    throw new Error('The portal asked to sign something other than ' + domain + '; nothing was signed.');
  }
  if (!window.crypto || !window.crypto.subtle) {
    throw new Error('This browser offers no WebCrypto here: open the portal over HTTPS.');
  }
  const pkcs8 = hexToBytes(PKCS8_ED25519_PREFIX + keyFile.secret);
  let key;
  try {
    key = await crypto.subtle.importKey('pkcs8', pkcs8, { name: 'Ed25519' }, false, ['sign']);
  } finally {
    pkcs8.fill(0);
  }
  const signature = await crypto.subtle.sign({ name: 'Ed25519' }, key, hexToBytes(toSignHex));
  return bytesToHex(new Uint8Array(signature));
}

function show(element, text, isError) {
  element.textContent = text;
  element.className = isError ? 'error' : 'notice';
  element.hidden = false;
}

async function postJson(url, body) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
    credentials: 'same-origin',
  });
  let reply;
  try {
    reply = await response.json();
  } catch (e) {
    throw new Error('The portal answered ' + response.status + ' without an explanation.');
  }
  if (!response.ok || reply.error) {
    throw new Error(reply.error || 'The portal answered ' + response.status + '.');
  }
  return reply;
}

function handle(form, message, action) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const buttons = form.querySelectorAll('button');
    buttons.forEach((b) => { b.disabled = true; });
    show(message, 'Working…', false);
    try {
      const reply = await action();
      if (reply.redirect) {
        window.location.assign(reply.redirect);
      }
    } catch (error) {
      show(message, error.message, true);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  });
}

function setUpLogin() {
  const form = document.getElementById('login-form');
  if (!form) return;
  const message = document.getElementById('message');
  handle(form, message, async () => {
    const keyFile = await readKeyFile(document.getElementById('key-file'));
    const signature = await signHex(keyFile, form.dataset.sign, LOGIN_DOMAIN);
    return postJson('/login', {
      challenge: form.dataset.challenge,
      public_key: keyFile.publicKey,
      signature,
    });
  });
}

function setUpApprove() {
  const form = document.getElementById('approve-form');
  if (!form) return;
  const message = document.getElementById('approve-message');
  handle(form, message, async () => {
    const keyFile = await readKeyFile(document.getElementById('approve-key-file'));
    if (keyFile.publicKey !== form.dataset.userKey) {
      throw new Error('That key file is not the key you signed in with.');
    }
    const days = parseInt(document.getElementById('days').value, 10);
    const prepared = await postJson(form.dataset.prepare, { days });
    const signature = await signHex(keyFile, prepared.sign, APPROVAL_DOMAIN);
    return postJson(form.dataset.approve, { token: prepared.token, signature });
  });
}

function setUpUpload() {
  const form = document.getElementById('upload-form');
  if (!form) return;
  const message = document.getElementById('message');
  handle(form, message, async () => {
    const input = document.getElementById('recording-file');
    const file = input.files && input.files[0];
    if (!file) {
      throw new Error('Choose a .recording file first.');
    }
    const response = await fetch('/upload', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: await file.arrayBuffer(),
      credentials: 'same-origin',
    });
    const reply = await response.json();
    if (!response.ok || reply.error) {
      throw new Error(reply.error || 'The portal answered ' + response.status + '.');
    }
    return reply;
  });
}

document.addEventListener('DOMContentLoaded', () => {
  setUpLogin();
  setUpApprove();
  setUpUpload();
});

// The @google/genai JavaScript SDK, exactly as a user would point it at the gateway.
//
//   node sdk_check.mjs BASE_URL --image FILE.png [--api-key KEY] [--api-version V]
//
// Runs generateContent (an inline PNG reference image + text) on Nano Banana 2,
// generateContentStream, countTokens, models.list, files.upload of a Blob (the resumable
// protocol: a start on the API host, then the bytes to the X-Goog-Upload-URL) and two
// error cases, then prints ONE JSON object on stdout:
//
//   {"sdk": {...}, "results": {...}, "upload_name": "files/..."}
//
// `results` holds no volatile fields (response ids, file names, timestamps), so the
// results of a run straight at the emulator and one through the gateway must be equal.
// A step that throws records {"error": {...}} and the others still run.
// The API key may also come from GEMINI_API_KEY. tests/test_js_sdk.py drives this.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { ApiError, GoogleGenAI } from '@google/genai';

const NB2 = 'gemini-3.1-flash-image-preview';
const FLASH = 'gemini-2.5-flash';
const PROMPT = 'Draw the same character waving.';
const VOLATILE = new Set(['responseId', 'sdkHttpResponse', 'createTime', 'updateTime', 'expirationTime']);

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    'api-key': { type: 'string' },
    'api-version': { type: 'string' },
    image: { type: 'string' },
  },
});
const baseUrl = positionals[0];
const apiKey = values['api-key'] ?? process.env.GEMINI_API_KEY;
if (!baseUrl || !apiKey || !values.image) {
  console.error('usage: node sdk_check.mjs BASE_URL --image FILE.png [--api-key KEY] [--api-version V]');
  process.exit(2);
}
const png = readFileSync(values.image);
const imageB64 = png.toString('base64');

const httpOptions = { baseUrl };
if (values['api-version']) httpOptions.apiVersion = values['api-version'];
const ai = new GoogleGenAI({ apiKey, httpOptions });

/** A JSON-safe deep copy without volatile fields. */
function clean(value) {
  return JSON.parse(JSON.stringify(value, (key, v) => (VOLATILE.has(key) ? undefined : v)));
}

function describeError(err) {
  let body = null;
  try {
    body = JSON.parse(err.message);
  } catch {
    // not Google's error JSON: keep the message as is
  }
  return {
    error: {
      class: err?.constructor?.name ?? typeof err,
      isApiError: err instanceof ApiError,
      status: err?.status ?? null,
      body: body ?? String(err?.message ?? err),
    },
  };
}

async function step(fn) {
  try {
    return await fn();
  } catch (err) {
    return describeError(err);
  }
}

const contents = [
  {
    role: 'user',
    parts: [{ inlineData: { mimeType: 'image/png', data: imageB64 } }, { text: PROMPT }],
  },
];
const imageParts = (response) =>
  (response.candidates?.[0]?.content?.parts ?? []).filter((p) => p.inlineData).length;

const results = {};
let uploadName = null;

results.generate = await step(async () => {
  const response = await ai.models.generateContent({ model: NB2, contents });
  return { response: clean(response), text: response.text ?? null, imageParts: imageParts(response) };
});

results.stream = await step(async () => {
  const chunks = [];
  for await (const chunk of await ai.models.generateContentStream({ model: NB2, contents })) {
    chunks.push(clean(chunk));
  }
  return { chunks };
});

results.countTokens = await step(async () =>
  clean(await ai.models.countTokens({ model: FLASH, contents: 'one two three' })),
);

results.models = await step(async () => {
  const pager = await ai.models.list();
  return { firstPage: pager.page.map((m) => m.name) };
});

results.upload = await step(async () => {
  const file = await ai.files.upload({
    file: new Blob([png], { type: 'image/png' }),
    config: { mimeType: 'image/png', displayName: 'sdk-check' },
  });
  uploadName = file.name;
  const fetched = await ai.files.get({ name: file.name });
  const strip = ({ name, uri, ...rest }) => clean(rest);
  return {
    file: strip(file),
    get: strip(fetched),
    sameName: fetched.name === file.name,
    uriEndsWithName: Boolean(file.uri?.endsWith(`/${file.name}`)),
  };
});

results.unknownModel = await step(async () => {
  await ai.models.generateContent({ model: 'no-such-model', contents: 'x' });
  return { error: null };
});

results.scripted429 = await step(async () => {
  await ai.models.generateContent({
    model: FLASH,
    contents: 'x',
    config: { httpOptions: { headers: { 'x-emulator-error': '429' } } },
  });
  return { error: null };
});

// The package does not export its package.json; read the installed one.
const { version } = JSON.parse(
  readFileSync(new URL('./node_modules/@google/genai/package.json', import.meta.url), 'utf8'),
);
process.stdout.write(
  JSON.stringify({ sdk: { version, node: process.version }, results, upload_name: uploadName }) + '\n',
);

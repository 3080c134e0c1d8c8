// Segmind's published JavaScript example (axios + form-data), pointed at an openveo server.
//
//   node segmind_client.js <base-url> <api-key> <mode> <out.mp4>
//   mode: multipart | urlencoded | bad-duration | no-key
//
// Writes the MP4 (on success) to <out.mp4> and prints one JSON line:
//   {"mode", "sent", "sentContentType", "status", "headers": {...}, "bytes", "error"?}
'use strict';

const fs = require('fs');
const axios = require('axios');
const FormData = require('form-data');

const [baseUrl, apiKey, mode, outPath] = process.argv.slice(2);
if (!outPath) {
  console.error('usage: node segmind_client.js <base-url> <api-key> <mode> <out.mp4>');
  process.exit(2);
}

const url = `${baseUrl}/v1/veo-2`;
// Every value a string, as Segmind's example sends them.
const bodies = {
  multipart: { prompt: 'a red panda riding a skateboard', seed: '965002', duration: '6', aspect_ratio: '9:16' },
  urlencoded: { prompt: 'a quiet forest', seed: '3', duration: '5', aspect_ratio: '16:9' },
  'bad-duration': { prompt: 'a red panda', seed: '1', duration: '9', aspect_ratio: '16:9' },
  'no-key': { prompt: 'a red panda', seed: '1', duration: '5', aspect_ratio: '16:9' },
};
const reqBody = bodies[mode];
if (!reqBody) {
  console.error(`unknown mode: ${mode}`);
  process.exit(2);
}

function request() {
  if (mode === 'urlencoded') {
    return axios.post(url, new URLSearchParams(reqBody), {
      headers: { 'x-api-key': apiKey },
      responseType: 'arraybuffer',
    });
  }
  const data = new FormData();
  for (const key in reqBody) {
    data.append(key, reqBody[key]);
  }
  const headers = { ...data.getHeaders() };
  if (mode !== 'no-key') headers['x-api-key'] = apiKey;
  return axios.post(url, data, { headers, responseType: 'arraybuffer' });
}

const HEADERS = [
  'content-type',
  'x-remaining-credits',
  'x-seed-value',
  'x-request-id',
  'x-generation-time',
  'x-cost',
];

function report(response) {
  const body = Buffer.from(response.data);
  const result = {
    mode,
    sent: reqBody,
    sentContentType: response.request.getHeader('content-type'), // as it went on the wire
    status: response.status,
    headers: {},
    bytes: body.length,
  };
  for (const name of HEADERS) {
    if (response.headers[name] !== undefined) result.headers[name] = String(response.headers[name]);
  }
  if (response.status >= 200 && response.status < 300) {
    fs.writeFileSync(outPath, body);
  } else {
    try {
      result.error = JSON.parse(body.toString('utf8'));
    } catch (e) {
      result.error = { unparsed: body.toString('utf8') };
    }
  }
  console.log(JSON.stringify(result));
}

(async function () {
  try {
    report(await request());
  } catch (error) {
    if (!error.response) {
      console.error('Error:', error.message);
      process.exit(1);
    }
    report(error.response); // axios rejects non-2xx; the response is on the error
  }
})();

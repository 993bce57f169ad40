#!/usr/bin/env node
// `npm start` will run the relay on 127.0.0.1:8787 with the chat demo and devtools once the
// relay (@missive/node) exists. Until then it says what runs today and exits non-zero.
console.error(
  'missive: the relay server is not built yet (it comes with @missive/node).\n' +
    'What runs today: the core API over the in-memory transport. Try `npm test` or `npm run bench`,\n' +
    'and see README.md for a two-peer example.',
);
process.exit(1);

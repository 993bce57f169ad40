// simple-peer ships no types; load.ts checks what the module gives at run time.
declare module 'simple-peer/simplepeer.min.js' {
  const SimplePeer: unknown;
  export default SimplePeer;
}

/** Host ICE candidates in the test page (shared by the direct-link chunks). */

/**
 * Chromium gathers host candidates only on the interface of the default route, unless the page
 * may use a microphone or camera: then it gathers on every interface, loopback included when
 * launched with `--allow-loopback-in-peer-connection`. A host whose only interface is loopback
 * has no default route, so the page asks for a microphone first; the fake media flags in
 * playwright.config.ts grant it without a prompt or a device. Once per page.
 */
let candidatesAllowed: Promise<void> | undefined;
export function allowHostCandidates(): Promise<void> {
  candidatesAllowed ??= navigator.mediaDevices.getUserMedia({ audio: true }).then((stream) => {
    for (const track of stream.getTracks()) track.stop();
  });
  return candidatesAllowed;
}


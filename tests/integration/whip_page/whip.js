// WHIP publisher (RFC 9725) for the integration test: getUserMedia, one sendonly
// transceiver per track, wait for ICE gathering to complete (the server does not trickle),
// POST the offer as application/sdp, apply the answer. Progress goes to the console
// (chromium --enable-logging=stderr shows it) and to the page.
"use strict";

const stream = new URLSearchParams(location.search).get("stream") || "browser";

function log(text) {
  console.log(`whip-test: ${text}`);
  document.getElementById("log").textContent += `${text}\n`;
  document.title = text;
}

function gatheringComplete(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
  });
}

async function publish() {
  const media = await navigator.mediaDevices.getUserMedia({
    video: { width: 320, height: 240, frameRate: 15 },
    audio: true,
  });
  const pc = new RTCPeerConnection();
  pc.addEventListener("connectionstatechange", () => log(`connection ${pc.connectionState}`));
  for (const track of media.getTracks()) {
    pc.addTransceiver(track, { direction: "sendonly", streams: [media] });
  }
  await pc.setLocalDescription(await pc.createOffer());
  await gatheringComplete(pc);
  const resp = await fetch(`/api/v1/whip/${encodeURIComponent(stream)}`, {
    method: "POST",
    headers: { "Content-Type": "application/sdp" },
    body: pc.localDescription.sdp,
  });
  const body = await resp.text();
  if (resp.status !== 201) throw new Error(`WHIP POST answered ${resp.status}: ${body}`);
  log(`session ${resp.headers.get("Location")}`);
  await pc.setRemoteDescription({ type: "answer", sdp: body });
  window.whipSession = { pc, location: resp.headers.get("Location") };
}

publish().catch((err) => log(`failed: ${err}`));

// An image model's answer: the picture (a data: URL the server sent) and its stats line.

export function picture(message) {
  if (!message.image) return document.createTextNode(message.state === "streaming" ? "Generating the image…" : "");
  const img = document.createElement("img");
  img.src = message.image; // only ever the server's base64 answer: nothing else reaches src
  img.alt = message.prompt || "generated image";
  return img;
}

export function imageStats(message) {
  const parts = [
    message.size,
    message.seconds !== undefined && `${message.seconds.toFixed(1)} s`,
    message.stopped && "stopped",
    message.error && `error: ${message.error}`,
  ];
  return parts.filter(Boolean).join(" · ");
}

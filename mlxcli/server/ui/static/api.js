// The server's own OpenAI API, as any client calls it: the model list, streamed chat completions, and
// image generations.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function headers(key) {
  const h = { "Content-Type": "application/json" };
  if (key) h.Authorization = "Bearer " + key;
  return h;
}

async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    message = body.error?.message || message;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, message);
}

// [{id, kind}]: chat models, and image models (kind "image": the page asks them for images).
export async function listModels(key) {
  const response = await fetch("/v1/models", { headers: headers(key) });
  if (!response.ok) throw await failure(response);
  // Embedding models answer /v1/embeddings, not chat: not for the picker.
  return (await response.json()).data.filter((model) => model.kind !== "embedding").map(({ id, kind }) => ({ id, kind }));
}

// One image from `prompt`, as a data: URL (JPEG: the page keeps it with the conversation in localStorage).
export async function generateImage(model, prompt, size, key, signal) {
  const body = { model, prompt, size, response_format: "b64_json", output_format: "jpeg", output_compression: 90 };
  const response = await fetch("/v1/images/generations", {
    method: "POST",
    headers: headers(key),
    body: JSON.stringify(body),
    signal,
  });
  if (!response.ok) throw await failure(response);
  const answer = await response.json();
  return { url: "data:image/jpeg;base64," + answer.data[0].b64_json, size: answer.size };
}

// One streamed answer. onDelta({content, reasoning}) gets each piece as it arrives; resolves with
// {usage, finishReason} at [DONE]. Aborting `signal` closes the connection: the server then stops
// generating.
export async function streamChat(body, key, signal, onDelta) {
  const request = { ...body, stream: true, stream_options: { include_usage: true } };
  const response = await fetch("/v1/chat/completions", {
    method: "POST",
    headers: headers(key),
    body: JSON.stringify(request),
    signal,
  });
  if (!response.ok) throw await failure(response);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const result = { usage: null, finishReason: null };
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = frame
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).replace(/^ /, ""))
        .join("\n");
      if (!data) continue; // a keep-alive comment
      if (data === "[DONE]") return result;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new ApiError(500, chunk.error.message || "generation failed");
      if (chunk.usage) result.usage = chunk.usage;
      const choice = chunk.choices && chunk.choices[0];
      if (!choice) continue;
      const delta = choice.delta || {};
      if (delta.content || delta.reasoning_content) {
        onDelta({ content: delta.content || "", reasoning: delta.reasoning_content || "" });
      }
      if (choice.finish_reason) result.finishReason = choice.finish_reason;
    }
  }
  throw new ApiError(0, "the server ended the stream before the answer was complete");
}

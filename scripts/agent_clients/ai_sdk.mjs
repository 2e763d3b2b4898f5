// The Vercel AI SDK's Responses model with one tool step (store: true, its default): the step after the
// call sends the call back as an item_reference. Exit status 0 only if the tool ran and a second step answered.
import { createOpenAI } from '@ai-sdk/openai';
import { generateText, stepCountIs, tool } from 'ai';
import { z } from 'zod';

const openai = createOpenAI({ baseURL: process.env.MLXCLI_URL + '/v1', apiKey: 'unused' });
let ran = 0;
const result = await generateText({
  model: openai.responses('scripted'),
  prompt: 'What is the weather in Paris? Use the weather tool.',
  maxOutputTokens: 256,
  tools: {
    weather: tool({
      description: 'The weather in a city',
      inputSchema: z.object({ city: z.string() }),
      execute: async ({ city }) => { ran += 1; return `sunny in ${city}`; },
    }),
  },
  prepareStep: ({ stepNumber }) => ({ toolChoice: stepNumber === 0 ? 'required' : 'none' }),
  stopWhen: stepCountIs(2),
});
console.log(`steps: ${result.steps.length}, tool runs: ${ran}, answer: ${JSON.stringify(result.text.slice(0, 60))}`);
process.exit(ran === 1 && result.steps.length === 2 ? 0 : 1);

import { ApiClient, CLIENT_FLAGS } from '../client.js';
import type { Command } from '../command.js';

export const operatorStepDownCommand: Command = {
  flags: CLIENT_FLAGS,
  async run({ flags }, io) {
    const client = ApiClient.fromFlags(flags, io.env);
    await client.request('PUT', 'sys/step-down');
    io.out(`Success! Stepped down: ${client.address}`);
    return 0;
  },
};

import { ApiClient, CLIENT_FLAGS } from '../client.js';
import type { Command } from '../command.js';

export const operatorSealCommand: Command = {
  flags: CLIENT_FLAGS,
  async run({ flags }, io) {
    await ApiClient.fromFlags(flags, io.env).request('PUT', 'sys/seal');
    io.out('Success! keyward is sealed.');
    return 0;
  },
};

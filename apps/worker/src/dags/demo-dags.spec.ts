import { checkDag } from '@app/protocol';
import { DEMO_DAGS } from './demo-dags';

it('stores only valid demo definitions', () => {
  for (const [dagId, definition] of Object.entries(DEMO_DAGS)) expect({ dagId, violations: checkDag(definition) }).toEqual({ dagId, violations: [] });
});

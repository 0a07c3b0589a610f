import fc from "fast-check";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deflateSync, gzipSync } from "node:zlib";
import { BufferSource, type ByteSource } from "../../src/bytes/source";
import { GatewayError } from "../../src/errors";
import type { FormatContext } from "../../src/formats/context";
import { decompressToTempFile, detectCompression, inspectCompressed, type Compression, type DecompressContext } from "../../src/formats/codecs/decompress";
import type { InspectionNode } from "../../src/inspect/report";
import { DEFAULT_CONTAINER_LIMITS, DEFAULT_PICKLE_LIMITS, type ContainerLimits } from "../../src/limits";
import { DEFAULT_CONTENT_POLICY } from "../../src/inspect/policy";

/** The payload the embedded python samples were made from (bz2/lzma/lz4 modules of CPython 3.11). */
function samplePayload(): Uint8Array {
  let s = "";
  for (let i = 0; i < 2500; i++) s += `row ${(i % 997).toString()} of the modelgate test payload\n`;
  return new TextEncoder().encode(s);
}

const SAMPLES = {
  bz2: "QlpoOTFBWSZTWR+Mno0AkdhZgAAQQAB/4CfG3KBgER98AAHwAAA2ZhsBICbAzYGbAy0GWQyyGQYAKaNAGgAApo0AaAACmjQBoAAElUwH/qqqVGg0MEI/VUmCf+pVVN6oZMEApVURR7/9JVKaMj1MaP0IVH5IVH/CFR933+1/tfF16/w/R49fj/L6nCSSST1J8SSSTxJOUkknaSTpJJOkkk7SScpJJPEk+JJJJ6k4SSSSfViSSSST1YnxJJJPqcJJJJPUnxJJJPEk5SSSdpJOkkk6SSTtJJykkk8ST4kkknqThJJJJ9WJJJJJPFiTlJJJ9ThJJJJ6k+JJJJ4knKSSTtJJ0kknSSSdpJOUkkniSfEkkk9ScJJJJPqxJJJJJ2sSTpJJPqcJJJJPUnxJJJPEk5SSSdpJOkkk6SSTtJJykkk8ST4kkknqThJJJJ9WLMzMzMzdZZmZu8kl9l+kkkkvclxJJJLzJLmSSS7ySXUkkuskku5JLnJJJeSS4ySSS9kv2SSSS+mkkkkkuc0kkvJJfZfpJJJL3JcSSSS8yS5kkku8kl1JJLrJJLuSS5ySSXkkuMkkkvZL9kkkkvppJJJJLjNJJJeyX2X6SSSS9yXEkkkvMkuZJJLvJJdSSS6ySS7kkuckkl5JLjJJJL2S/ZJJJL6aSSSSS/ZpJJJfS+y/SSSSXuS4kkkl5klzJJJd5JLqSSXWSSXcklzkkkvJJcZJJJeyX7JJJJfTSSSSSaaSSSSX2X6SSSS9yXEkkkvMkuZJJLvJJdSSS6ySS7kkuckkl5JLjJJJL2S/ZJJJL6aXOc5zn5IVH3IVH7EKj9aWJJPx+Px+J9ThJJJJ6k+JJJJ4knKSSTtZZZZ1JJLrJJLuSS5ySSXkkuMkkkvZL9kkkkvr7fWtazMzWta1mZmta1rMzNa1rWZma1rWszM+uta19WZma1rWZmZrWtZmZmta1mZma1rWZmZ1y6666666681rca1rWtak+pwkkkk9M3GZmZmXmSXMkkl3kkupJJdZJJdySXOSSS8klxkkkl7fzMzMkkltm/ZmZJJfW2b9mZkkl9bZv2ZmSSX1tm/ZmZJJfW2b9mZkkl9bZv2ZmSSX1tm/ZmZJJfW2b9mZkkl9bJwkllllln3BrWuGta1rWp9WJJJJrWtbjWta1qSfTfszMzMl7kuJJJJeZJcySSXeSS6kkl1kkl3JJc5JJLy+38zMySS+ts37MzJJL62zNxmZJJe22ZuMzJJL22zNxmZJJe22ZuMzJJL22zNxmZJJe22ZuMzJJL22zNxmZJJe22J8SWWWWWe4Na1r41rWtanqThJJJJ9WJJJNa1rWr169evXXOc1z4c5znOc59rnPkkkkvMkuZJJLvJJdSSS6ySS7vt9v5mZJJe22ZuMzJJL22zNxmZJJe22Zm5zJJLy2zM3OZJJeW2Zm5zJJLy2zM3OZJJeW2Zm5zJJLy2zM3OZJJeW2YnKWWWWWeYNa1rXLWta1PEk+JJJJ6k4SSSSfViuuuuvXrzzzz088885znOa58OJJJL3JcSSSS8yS5kkku8kl1fb7fb+Zkkl5bZmbnMkkvLbMzc5kkl5bZmbnMkkvLbMzN1kkl3bZmZuskku7bMzN1kkl3bZmZuskku7bMzN1kkl3bZmJ0sssss7wbma1rWumta1O0knKSSTxJPiSSSepOLrrrrnOczpznOevPPPPPPTz1/JJJL7L9JJJJe5LiSSSXmSXN9vt9vt/Mkku7WZmbrJJLutMzN1kkl3WmZm6ySS7rTMzdZJJd1pmZl3kkuq0zMy7ySXVaZmZd5JLqtMzMu8kl1WmZpZ2ssss6zGcZrWta1rtrUnSSSdJJJ2kk5SSSeJLcZmZJL2S/ZJJJL6aS5688888889PPOc5znOa58Oc6SSXuS+32+32+v5l9fS6rTMzLvJJdVpmZl3kkuq0zMy7ySXVaZmZd5JLqtMzMu8kl1WmZmS8yS5rTMzJeZJc1pmZkvMkua0zM1lniyyznMZrWta1rXjWpykkk7SSdJJJ0kknaSTnMySXkkuMkkkvZL9kjnOc5nTnPXnnnnnnnnp5znOc5zmua1rWZ65nPoTrrrrnPMkua0zMyXmSXNaZmZLzJLmtMzMl5klzWmZmS8yS5rTMzJeZJc1pmZkl7kuK0zMyS9yXFaZmZKz1ZZ8zGa1rWta1r1qfEkkk8STlJJJ2kk6SSTpZJLuSS5ySSXkkuMkjnOfZznxc5znOc5nTnrzzzzzzzzz1rWtZmeuc+Sddddc5z7ZLitMzMkvclxWmZmSXuS4rTMzJL3JcVpmZkl7kuK0zMyS9yXFaZmZJe5LitMzMkl9l+rTMzJJn1ZwM4a1rWta1r1J8SSSTxJOUkknaSTpJJOkSS7kkuckkl5JLjJJJL2S/ZJJJL6aSSSSS93u93u9vb29v5v5fq0zMySX2X6tMzMkl9l+rTMzJJfZfq0zMySX2X6tMzMkl9l8E+HXXXXOc51TWtazMzVNa1rMzMlrWtZmZlfuQqP/EKj+CFR+CFR9CFR/8hUf9IVH4IVHwQqPoQqP3IVHyQqPwQqP6IVHiFR9SFR/JCo+SFR+SFR8EKj8kKj/JCo/ohUf6IVH1EKjxCo+SFR/Yu5IpwoSA/GT0aA==",
  xz: "/Td6WFoAAATm1rRGAgAhARYAAAB0L+Wj4XHNAgddADkby1Agn62QO+yBEAL0/0adAk6eQw7PJ5IG39gc7EbR+YbWxTnTC6Wf4Ktb41LZoY29Sij7pMu90G6TXFmIxUVj6WQycAsDnBfxvR35RiaiojEzySmnI0R2qQpEqP0ig57jPu//KUN0aawyh/lv76MJHM1KhdIE2+rukfyyaOvIQ/VVZ0BC1moY5rKurdJr4ubC9643zXb7axPkBktfZZeJ2vWTSM1BYKhkzTE0o3yUGhQF/C+2YyGuMEoR+BafKdaHSzWTZSlARigElPQaWxZN5fkTRqzaDam4aTbPeoKRhyl9Y2G00D44NePCOJ7LWIxtb6UC0Ah1xCKB81pzXEW1pFbXYVz+cBPfhHvBtyDenlMxJRTaAeGZi3QL59njVmBmOHzoY9NOjL4RoJ/DLRDDzBaTbQDH55AbAFxoFPQnGtMDa9GPnx2nZUhIwbOoVOcBbBsFaGiiOyHkjqH+Ie2/iwqBBXX33TlavdavSG329IJ8bPneWa69/L9m3/a9d6taENo6SRWpYdNt+54ZvmxrrlicEbaVgR5nYNK54hKfjh/QxM64Gqnb0ugCcY8kFZV2E36eBYIpWrfvc6d4pQv2pId+kFDLaQ0z5iJz44/IlSDBOrPxFEAUcSyYcPf6nNtLlCZOg2OvUU7lFkj75Cktwr2BSSATxrM5DZgEQ8kZ+w3idRQAAAAAOWndJ+HTJ2YAAaMEzuMFANQSHOmxxGf7AgAAAAAEWVo=",
  lzma: "XQAAgAD//////////wA5G8tQIJ+tkDvsgRAC9P9GnQJOnkMOzyeSBt/YHOxG0fmG1sU50wuln+CrW+NS2aGNvUoo+6TLvdBuk1xZiMVFY+lkMnALA5wX8b0d+UYmoqIxM8kppyNEdqkKRKj9IoOe4z7v/ylDdGmsMof5b++jCRzNSoXSBNvq7pH8smjryEP1VWdAQtZqGOayrq3Sa+LmwveuN812+2sT5AZLX2WXidr1k0jNQWCoZM0xNKN8lBoUBfwvtmMhrjBKEfgWnynWh0s1k2UpQEYoBJT0GlsWTeX5E0as2g2puGk2z3qCkYcpfWNhtNA+ODXjwjiey1iMbW+lAtAIdcQigfNac1xFtaRW12Fc/nAT34R7wbcg3p5TMSUU2gHhmYt0C+fZ41ZgZjh86GPTToy+EaCfwy0Qw8wWk20Ax+eQGwBcaBT0JxrTA2vRj58dp2VISMGzqFTnAWwbBWhoojsh5I6h/iHtv4sKgQV19905Wr3Wr0ht9vSCfGz53lmuvfy/Zt/2vXerWhDaOkkVqWHTbfueGb5sa65YnBG2lYEeZ2DSueISn44f0MTOuBqp29LoAnGPJBWVdhN+ngWCKVq373OneKUL9qSHfpBQy2kNM+Yic+OPyJUgwTqz8RRAFHEsmHD3+pzbS5QmToNjr1FO5RZI++QpLcK9gUkgE8azOQ2YBEPJGfsN4oUKTxP//ldv4Q==",
  lz4Linked:
    "BCJNGExAznEBAAAAAAAhuBUAAPAVcm93IDAgb2YgdGhlIG1vZGVsZ2F0ZSB0ZXN0IHBheWxvYWQKJAAfMSQAEB8yJAAQHzMkABAfNCQAEB81JAAQHzYkABAfNyQAEB84JAAQHzkkABAfMWkBEg9qAREfMWsBER8xbAERHzFtAREfMW4BER8xbwERHzFwAREfMXEBER8xcgERHzJyAREfMnIBER8ycgERHzJyAREfMnIBER8ycgERHzJyAREfMnIBER8ycgERHzJyAREfM3IBER8zcgERHzNyAREfM3IBER8zcgERHzNyAREfM3IBER8zcgERHzNyAREfM3IBER80cgERHzRyAREfNHIBER80cgERHzRyAREfNHIBER80cgERHzRyAREfNHIBER80cgERHzVyAREfNXIBER81cgERHzVyAREfNXIBER81cgERHzVyAREfNXIBER81cgERHzVyAREfNnIBER82cgERHzZyAREfNnIBER82cgERHzZyAREfNnIBER82cgERHzZyAREfNnIBER83cgERHzdyAREfN3IBER83cgERHzdyAREfN3IBER83cgERHzdyAREfN3IBER83cgERHzhyAREfOHIBER84cgERHzhyAREfOHIBER84cgERHzhyAREfOHIBER84cgERHzhyAREfOXIBER85cgERHzlyAREfOXIBER85cgERHzlyAREfOXIBER85cgERHzlyAREfOXIBES8xMHMBES8xMHQBES8xMHUBES8xMHYBES8xMHcBES8xMHgBES8xMHkBES8xMHoBES8xMHsBES8xMHwBEg9/DhQPfAESD4EOEw+CDhMPgw4TD4QOEw+FDhMPhg4TD4cOEw+IDhIfMYkOEh8xig4SHzGLDhIfMYwOEh8xjQ4SHzGODhIfMY8OEh8xkA4SHzGRDhIfMZIOEh8xkw4SHzGUDhIvMTN0BBIPlg4SHzGXDhIfMZgOEh8xmQ4SHzGaDhIfMZsOEh8xnA4SHzGdDhIfMZ4OEh8xnw4SHzGgDhIfMaEOEh8xog4SHzGjDhIfMaQOEh8xpQ4SHzGmDhIfMacOEh8xqA4SHzGpDhIfMaoOEh8xqw4SHzGsDhIfMa0OEh8xrg4SHzGvDhIfMbAOEh8xsQ4SHzGyDhIfMbMOEh8xtA4SHzG1DhIfMbYOEh8xtw4SHzG4DhIfMbkOEh8xug4SHzG7DhIfMbwOEh8xvQ4SHzG+DhIfMb8OEh8xwA4SHzHBDhIfMcIOEh8xww4SHzHEDhIfMcUOEh8xxg4SHzHHDhIfMcgOEh8xyQ4SHzHKDhIfMcsOEh8xzA4SHzHNDhIfMc4OEh8xzw4SHzHQDhIfMdEOEh8x0g4SHzHTDhIfMdQOEh8x1Q4SHzHWDhIfMdcOEh8x2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SLzIx4AsRHzLYDhIfMtgOEh8y2A4SHzLYDhIvMjFUEBEfMtgOEh8y2A4SHzLYDhIvMjJ8ARIP2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SLzI4uBoRHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEi8yOTQcER8y2A4SHzLYDhIfMtgOEh8y2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIvMzEsHxEfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIvMzJ8ARIP2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEi8zN8AXER8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIvMzkMKxEfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIvNDDQEREvNDH4AhEfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEi80MiwfER802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEi80M/wwES80M8gUER802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SLzQ0eDIRHzTYDhIvNDR8ARIP2A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SLzQ2+AISD9gOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SLzQ48AUSD9gOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEi81NFBBER812A4SHzXYDhIfNdgOEi81NbgaER812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEi81NUQWER812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SLzY1JCIRHzbYDhIfNtgOEi82NhwlER822A4SHzbYDhIfNtgOEh822A4SHzawHRIvNjZ4MhEfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SLzY4HCURHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEi83N1wNER832A4SHzfYDhIfN9gOEj83NzjMcRAfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEi83OfgCEg/YDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEi84MUQWER842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIvODPoCBEfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEi84NfgCEg/YDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEj84NzL0DRAfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIvODeALxEfONgOEh842A4SHzjYDhI/ODgzogERD9gOEh842A4SHzjYDhIfONgOEi84OFwNER842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIvOTPQEREfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIvOTlMchEvOTnQEREfOdgOEh852A4SHznYDhIvOTnoCBEPBDIRDwYBEQ8EAREPVhERD8gVER81nhEQD/wAEQ9yMxEPTBERD8YSEQ9RDhIPUA4SD08OEg9ODhIPTQ4SD0wOEg9LDhIPSg4SD0kOEg9IDhIPRw4SD0YOEg9FDhIPRA4SD0MOEg9CDhIPQQ4SD0AOEg8/DhIPPg4SDz0OEg88DhIPOw4SDzoOEg85DhIfM1IEEQ83DhIPNg4SDzUOEg80DhIPMw4SDzIOEg8xDhIPMA4SDy8OEg8uDhIPLQ4SDywOEg8rDhIPKg4SDykOEg8oDhIPJw4SDyYOEg8lDhIPJA4SDyMOEg8iDhIPIQ4SDyAOEg8fDhIPHg4SDx0OEg8cDhIPGw4SDxoOEg8ZDhIPGA4SDxcOEg8WDhIPFQ4SDxQOEg8TDhIPEg4SDxEOEg8QDhIPDw4SDw4OEg8NDhIPDA4SDwsOEg8KDhIPCQ4SDwgOEg8HDhIPBg4SDwUOEg8EDhIPAw4SDwIOEw/5DBEPAA4TD/sMEQ/+DRMP/QwRD/wNEw//DBEfOQANEQ/RHBIP0BwSD5CT/////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////0hQdGhlIG2AAAAAD/L/Bw+Qk////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////w5QbG9hZAoAAAAAXoRksw==",
};

const b64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "base64"));
const cat = (...parts: Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(parts));

function compressed(kind: Compression, payload = samplePayload()): Uint8Array {
  switch (kind) {
    case "zlib":
      return new Uint8Array(deflateSync(payload));
    case "gzip":
      return new Uint8Array(gzipSync(payload));
    case "bz2":
      return b64(SAMPLES.bz2);
    case "xz":
      return b64(SAMPLES.xz);
    case "lzma":
      return b64(SAMPLES.lzma);
    case "lz4":
      return b64(SAMPLES.lz4Linked);
  }
}

const KINDS: Compression[] = ["zlib", "gzip", "bz2", "xz", "lzma", "lz4"];

let tempDir: string;
beforeEach(() => {
  tempDir = mkdtempSync(join(tmpdir(), "mg-decompress-"));
});
afterEach(() => {
  rmSync(tempDir, { recursive: true, force: true });
});

function ctxOf(limits: Partial<ContainerLimits> = {}, used = 0): DecompressContext {
  return { containerLimits: { ...DEFAULT_CONTAINER_LIMITS, ...limits }, budget: { uncompressedBytes: used }, tempDir };
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (err) {
    return err instanceof GatewayError ? err.code : `not-a-gateway-error: ${String(err)}`;
  }
  return undefined;
}

async function roundTrip(bytes: Uint8Array, kind: Compression, ctx = ctxOf()): Promise<Uint8Array> {
  const out = await decompressToTempFile(new BufferSource(bytes), kind, ctx);
  try {
    expect(out.uncompressedBytes).toBe(out.source.size);
    return new Uint8Array(readFileSync(out.source.path));
  } finally {
    out.close();
  }
}

describe("detectCompression", () => {
  it.each(KINDS)("recognises %s by its prefix", (kind) => {
    expect(detectCompression(new BufferSource(compressed(kind)))).toBe(kind);
  });

  it("follows joblib's prefixes and nothing looser", () => {
    const detect = (bytes: number[]): Compression | undefined => detectCompression(new BufferSource(Uint8Array.from(bytes)));
    expect(detect([0x78, 0x9c])).toBe("zlib");
    expect(detect([0x78, 0x01])).toBe("zlib");
    expect(detect([...new TextEncoder().encode("x: 1\n")])).toBeUndefined(); // YAML, not a zlib header
    expect(detect([0x78, 0xbb])).toBeUndefined(); // FDICT set: needs a preset dictionary
    expect(detect([0x42, 0x5a, 0x68, 0x30])).toBeUndefined(); // BZh0 is no block size
    expect(detect([0x5d, 0x00])).toBe("lzma");
    expect(detect([0x5d, 0x01])).toBeUndefined();
    expect(detect([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])).toBe("xz");
    expect(detect([0x80, 0x04, 0x95])).toBeUndefined(); // a pickle
    expect(detect([0x5a, 0x46])).toBeUndefined(); // joblib < 0.10 'ZF' files are not decompressed here
    expect(detect([])).toBeUndefined();
  });
});

describe("decompressToTempFile", () => {
  it.each(KINDS)("decompresses %s into a temp file, charges the budget and removes the file on close", async (kind) => {
    const ctx = ctxOf({}, 10);
    const out = await decompressToTempFile(new BufferSource(compressed(kind)), kind, ctx);
    const expected = samplePayload();
    expect(Buffer.from(readFileSync(out.source.path)).equals(Buffer.from(expected))).toBe(true);
    expect(out.compression).toBe(kind);
    expect(out.uncompressedBytes).toBe(expected.length);
    expect(ctx.budget.uncompressedBytes).toBe(10 + expected.length);
    expect(readdirSync(tempDir)).toHaveLength(1);
    out.close();
    expect(readdirSync(tempDir)).toHaveLength(0);
  });

  it.each(KINDS)("rejects truncated %s streams and leaves no temp file", async (kind) => {
    const bytes = compressed(kind);
    for (const cut of [1, 5, Math.floor(bytes.length / 2)]) {
      await expect(decompressToTempFile(new BufferSource(bytes.subarray(0, bytes.length - cut)), kind, ctxOf())).toFailWithCode("malformed_container");
    }
    expect(readdirSync(tempDir)).toHaveLength(0);
  });

  it.each(KINDS)("rejects %s streams with trailing bytes", async (kind) => {
    const bytes = cat(compressed(kind), Uint8Array.from([0x2e, 0x00, 0x00, 0x00]));
    await expect(decompressToTempFile(new BufferSource(bytes), kind, ctxOf())).toFailWithCode("malformed_container");
  });

  it.each(KINDS)("rejects a corrupted %s stream", async (kind) => {
    const bytes = compressed(kind).slice();
    const at = Math.floor(bytes.length / 2);
    bytes[at] = (bytes[at] as number) ^ 0x41;
    await expect(decompressToTempFile(new BufferSource(bytes), kind, ctxOf())).toFailWithCode("malformed_container");
  });

  it("rejects concatenated gzip members, xz and lzma streams (joblib reads only the first)", async () => {
    for (const kind of ["gzip", "xz", "lzma", "lz4", "zlib"] as const) {
      const one = compressed(kind);
      await expect(decompressToTempFile(new BufferSource(cat(one, one)), kind, ctxOf())).toFailWithCode("malformed_container");
    }
  });

  it("reads concatenated bz2 streams in full, as Python's BZ2File does", async () => {
    const one = compressed("bz2");
    const bytes = await roundTrip(cat(one, one), "bz2");
    expect(bytes.length).toBe(2 * samplePayload().length);
  });

  it("checks gzip header fields strictly", async () => {
    const gz = compressed("gzip").slice();
    const reserved = gz.slice();
    reserved[3] = 0x20;
    await expect(decompressToTempFile(new BufferSource(reserved), "gzip", ctxOf())).toFailWithCode("malformed_container");
    // FHCRC with a wrong header CRC: insert two bytes after the 10-byte header.
    const withHcrc = cat(gz.subarray(0, 10), Uint8Array.from([0, 0]), gz.subarray(10));
    withHcrc[3] = 0x02;
    await expect(decompressToTempFile(new BufferSource(withHcrc), "gzip", ctxOf())).toFailWithCode("malformed_container");
    // An unterminated file name runs into the limit or the end: malformed either way.
    const named = cat(gz.subarray(0, 10), new Uint8Array(70 * 1024).fill(0x41));
    named[3] = 0x08;
    await expect(decompressToTempFile(new BufferSource(named), "gzip", ctxOf())).toFailWithCode("malformed_container");
    // A well-formed name and extra field are accepted.
    const extra = cat(gz.subarray(0, 10), Uint8Array.from([2, 0, 0xaa, 0xbb]), new TextEncoder().encode("model.pkl\0"), gz.subarray(10));
    extra[3] = 0x04 | 0x08;
    expect((await roundTrip(extra, "gzip")).length).toBe(samplePayload().length);
  });

  it("rejects a gzip trailer whose CRC or size disagrees", async () => {
    const gz = compressed("gzip");
    for (const at of [gz.length - 8, gz.length - 1]) {
      const bad = gz.slice();
      bad[at] = (bad[at] as number) ^ 1;
      await expect(decompressToTempFile(new BufferSource(bad), "gzip", ctxOf())).toFailWithCode("malformed_container");
    }
  });
});

describe("decompression limits", () => {
  const size = samplePayload().length;

  it.each(KINDS)("bounds %s output per stream: at the limit and one byte past it", async (kind) => {
    const bytes = compressed(kind);
    expect((await roundTrip(bytes, kind, ctxOf({ maxEntryUncompressedBytes: size }))).length).toBe(size);
    await expect(decompressToTempFile(new BufferSource(bytes), kind, ctxOf({ maxEntryUncompressedBytes: size - 1 }))).toFailWithCode("limit_exceeded");
    expect(readdirSync(tempDir)).toHaveLength(0);
  });

  it("bounds the artifact's total through the shared budget", async () => {
    const bytes = compressed("zlib");
    expect((await roundTrip(bytes, "zlib", ctxOf({ maxTotalUncompressedBytes: size + 100 }, 100))).length).toBe(size);
    const ctx = ctxOf({ maxTotalUncompressedBytes: size + 100 }, 101);
    await expect(decompressToTempFile(new BufferSource(bytes), "zlib", ctx)).toFailWithCode("limit_exceeded");
  });

  it("bounds the compression ratio once past the grace", async () => {
    const bytes = compressed("xz");
    const ratio = size / bytes.length;
    const source = new BufferSource(bytes);
    const at = await decompressToTempFile(source, "xz", ctxOf({ maxCompressionRatio: Math.ceil(ratio) }), { ratioGraceBytes: 0 });
    at.close();
    await expect(decompressToTempFile(source, "xz", ctxOf({ maxCompressionRatio: Math.floor(ratio) }), { ratioGraceBytes: 0 })).toFailWithCode(
      "limit_exceeded",
    );
    // The grace lets small streams expand further, exactly up to its size.
    const graced = await decompressToTempFile(source, "xz", ctxOf({ maxCompressionRatio: 1 }), { ratioGraceBytes: size });
    graced.close();
    await expect(decompressToTempFile(source, "xz", ctxOf({ maxCompressionRatio: 1 }), { ratioGraceBytes: size - 1 })).toFailWithCode("limit_exceeded");
  });

  it("stops a zlib bomb early, without writing it out", async () => {
    const bomb = deflateSync(new Uint8Array(8 * 1024 * 1024));
    const ctx = ctxOf({ maxCompressionRatio: 100 });
    await expect(decompressToTempFile(new BufferSource(new Uint8Array(bomb)), "zlib", ctx)).toFailWithCode("limit_exceeded");
    expect(ctx.budget.uncompressedBytes).toBeLessThanOrEqual(Math.max(bomb.length * 100, 1024 * 1024));
    expect(readdirSync(tempDir)).toHaveLength(0);
  });

  it("caps the lzma decoder's memory", async () => {
    // The samples use preset 6: an 8 MiB dictionary.
    for (const kind of ["xz", "lzma"] as const) {
      await expect(decompressToTempFile(new BufferSource(compressed(kind)), kind, ctxOf(), { lzmaMemoryLimit: 1024 * 1024 })).toFailWithCode("limit_exceeded");
    }
  });
});

describe("inspectCompressed", () => {
  function formatCtx(inner: (source: ByteSource, path: string, ctx: FormatContext) => InspectionNode, depth = 0): FormatContext {
    return {
      policy: DEFAULT_CONTENT_POLICY,
      containerLimits: DEFAULT_CONTAINER_LIMITS,
      pickleLimits: DEFAULT_PICKLE_LIMITS,
      depth,
      tempDir,
      budget: { uncompressedBytes: 0 },
      inspectMember: (source, path, ctx) => Promise.resolve(inner(source, path, ctx)),
      inspectArchive: () => Promise.reject(new Error("not used")),
    };
  }

  it("hands the decompressed bytes to inspectMember one level deeper and reports a compressed pickle as joblib", async () => {
    const seen: { size: number; path: string; depth: number }[] = [];
    const ctx = formatCtx((source, path, c) => {
      seen.push({ size: source.size, path, depth: c.depth });
      return { kind: "pickle-file", path, format: "pickle", findings: [], children: [] };
    });
    const node = await inspectCompressed(new BufferSource(compressed("gzip")), "model.joblib", ctx);
    expect(seen).toEqual([{ size: samplePayload().length, path: "model.joblib#gzip", depth: 1 }]);
    expect(node.format).toBe("joblib");
    expect(node.details).toMatchObject({ compression: "gzip", uncompressedBytes: samplePayload().length });
    expect(node.findings).toEqual([]);
    expect(ctx.budget.uncompressedBytes).toBe(samplePayload().length);
    expect(readdirSync(tempDir)).toHaveLength(0);
  });

  it("keeps the compression as the format when the content is not a pickle", async () => {
    const node = await inspectCompressed(
      new BufferSource(compressed("bz2")),
      "",
      formatCtx((_s, path) => ({ kind: "tar", path, format: "tar", findings: [], children: [] })),
    );
    expect(node.format).toBe("bz2");
    expect(node.children[0]?.path).toBe("bz2");
  });

  it("turns decompression failures into findings", async () => {
    const bytes = compressed("zlib").subarray(0, 40);
    const node = await inspectCompressed(
      new BufferSource(bytes),
      "a.z",
      formatCtx(() => {
        throw new Error("must not be called");
      }),
    );
    expect(node.findings.map((f) => f.code)).toEqual(["malformed_container"]);
    const limited = formatCtx(() => ({ kind: "x", path: "", findings: [], children: [] }));
    limited.containerLimits = { ...DEFAULT_CONTAINER_LIMITS, maxEntryUncompressedBytes: 10 };
    const node2 = await inspectCompressed(new BufferSource(compressed("zlib")), "a.z", limited);
    expect(node2.findings.map((f) => f.code)).toEqual(["limit_exceeded"]);
  });

  it("bounds nesting depth: at the limit and past it", async () => {
    const max = DEFAULT_CONTAINER_LIMITS.maxNestingDepth;
    const inner = (): InspectionNode => ({ kind: "x", path: "", findings: [], children: [] });
    expect((await inspectCompressed(new BufferSource(compressed("zlib")), "", formatCtx(inner, max - 1))).findings).toEqual([]);
    const past = await inspectCompressed(new BufferSource(compressed("zlib")), "", formatCtx(inner, max));
    expect(past.findings.map((f) => f.code)).toEqual(["limit_exceeded"]);
  });

  it("reports content without a compression prefix as unknown", async () => {
    const node = await inspectCompressed(
      new BufferSource(Uint8Array.from([1, 2, 3])),
      "",
      formatCtx(() => ({ kind: "x", path: "", findings: [], children: [] })),
    );
    expect(node.findings.map((f) => f.code)).toEqual(["unknown_format"]);
  });
});

describe("mutated streams", () => {
  it.each(KINDS)("%s: every mutation decodes or fails with an inspection code, and leaves no temp file", async (kind) => {
    const base = compressed(kind);
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }),
        fc.nat(base.length),
        async (edits, cut) => {
          const bytes = base.slice(0, Math.max(cut, 1));
          for (const [at, value] of edits) if (at < bytes.length) bytes[at] = value;
          const code = await codeOf(
            decompressToTempFile(new BufferSource(bytes), kind, ctxOf()).then((out) => {
              out.close();
            }),
          );
          expect([undefined, "malformed_container", "limit_exceeded"]).toContain(code);
        },
      ),
      { numRuns: kind === "bz2" ? 40 : 120 },
    );
    expect(readdirSync(tempDir)).toHaveLength(0);
  });
});

import fc from "fast-check";
import { BufferSource } from "../../src/bytes/source";
import { GatewayError } from "../../src/errors";
import { decodeBzip2 } from "../../src/formats/codecs/bzip2";
import { codeOf } from "../support/errors";

/** Samples made with CPython's bz2 module (libbz2 1.0.8) from the payloads below. */
const SAMPLES = {
  oneBlockLevel2:
    "QlpoMjFBWSZTWcRBlwwA5/pZAHAQSAB/4AIlYBz/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABTCaaA0xCmE00BpiFMJpoDTEKYTTQGmIUwmmgNMQKVKqP/1VHt+qqqj0gafxSBP9h7+Q9Jf6jkcjkcS5HI5HI6S6HI5HI5S6HQ6HI5S5HQ6HQ5S5HI5HQ6S5HI5HI4lyORyORxLkcjkcjpLocjkcjlLodDocjlLkdDkcjiXI5HQ6HKXI5HI6HSXI5HI5HEuRyORyOJcjkcjkdJdDkcjkcpdDodDkcpcjodDocpcjkcjodJcjkcjkcS5HI5HI6S6HI5HI4lyORyOR0l0ORyORyl0Oh0ORylyOh0OhylyORyOh0lyORyORxLkcjkcjiXI5HI5HSXQ5HI5HKXQ6HI5HKXQ6HQ5HKXI6HQ6HKXI5HI6HSXI5HI5HEuRyORyOJcjkcjkdJdDkcjkcpdDodDkcpcjodDocpcjkcjodJcjkdDkcpcjocjkcS5HI5HI4lyORyOR0l0ORyORyl0Oh0ORylyOh0OhylyORyOh0lyORyORxLkcjkcjiXI5HI5HSXQ5HQ6HKXI5HI5HKXQ6HQ5HKXI6HQ6HKXI5HI6HSXI5HI5HEuRyORyOJcjkcjkdJdDkcjkcpdDodDkcpcjodDodJcjkcjodJcjkcjocS5HI5HI6i5HI5HI4l0ORyOR0l0Oh0ORyl0Oh0OhylyOh0Oh0lyORyOhxLkcjkcjqLkcjkcjiXQ5HI5HEuRyORyOkuh0OhyOUuh0Oh0OUuR0Oh0OkuRyOR0OJcjkcjkdRcjkcjkcS6HI5HI6S6HQ6HI5S6HQ6HQ5S5HQ5HI4lyOR0Oh0lyORyOhxLkcjkcjqLkcjkcjiXQ5HI5HSXQ6HQ5HKXQ6HQ6HKXI6H/Ifkf+0eRkf+If+Yf8R/0j8j/0j/2j8jQ0P8RkZGRkaGhkf1GRkZH+o0NDIyMjI/iMjQ0MjkZGRkaGhyMjIyMjI/kNDIyMj/YZGRoaGRkf1GRkaH+Q0MjIyMjQ0P0MjI8jIyNDQ0MjIyPkahoaGRkZGRoftD9D5HkfI+R9D6HyPyMjI/IyND/IZGRkZGRoaH9RkZGR/qMjQ0MjIyP4jIyNDQ5GRkZGRocjQyMjIyP4jQ0MjI/1GRkZGhoZH9RkZGh/kNDQyMjIyND9DQyPQyMjI0NDQyMj5GI0NDQyMjIyMj+w/I8j8j8j8j9D9D8jIyP0MjI/yGhkZGRkZGh/UaGRkf6jIyNDQyMj+IyMjI0OhkZGRkZHI0NDIyMj+IyNDQyP9RkZGRkaGh/UZGRkf4jQ0NDIyMjI/Q0ND0MjIyMjQ0NDI+RqGRoaGhkZGRkf1H6HkfkfkfkfkfofoZGR+hkZH+I0NDIyMjIyP7DQ0Mj/UZGRkaGhkfxGRkZGR0NDIyMjI5GRoaGRkfxGRkaGh/qMjIyMjI0P7DIyMj/EZGhoaGRkZH5GhoeRoZGRkZGhoaHyNQyMjQ0NDIyMj+o/Q9D8j8j8j8j8j9DQyPyMjI/xGRoaGRkZGR/YZGhof6jIyMjI0ND+QyMjIyORoaGRkZHIyMjQ0Mj+IyMjI0P9RoZGRkZGR/YaGRkf4jIyNDQ0MjI/IyNDyNDQyMjIyNDQ+hiMjIyNDQ0MjI/qPyPQ/Q/I/I/I/I/I0ND8jIyP8RkZGhoZGRkf1GRkaH+wyMjIyMjQ/kNDIyMjkZGhoZGR0MjIyNDQ/iMjIyMj/UaGhkZGRkf1GhoZH+IyMjI0NDQyPyMjI8jQ0NDIyMjI0PoahkZGRkaGhoaH9R+R5H6H6H5H5H5H5GRofkaGR/iMjIyNDQyMj+oyMjI/2GhkZGRkZH8RoaGRkcjIyNDQyOhkZGRkaH8hkZGRkf7DI0NDIyMj+oyNDQ/xGRkZGRoaGh+RkZHkZGhoaGRkZGR9DUNDIyMjI0ND/4CpU/6UgT/0jxHoeoeR6h5HiPI8R5HiPQ8R6HqHkeQ8j1DyPEeR4jyPIeR4j0PEeh6h5HkPI9Q8jxHkeI8jxHoeI9D1DyPUPI8h5HqHkeI8jxHkeI9DxHoeoeR5DyPUPI8R5HiPI8R5HiPQ8R6HqHkeQ8j1DyPEeR4jyPEeh4jyPEeh6h5HkPI9Q8jxHkeI8jxHoeI9D1DyPIeR6h5HiPI8R5HiPI8R6HiPQ9Q8jyHkeoeR4jyPEeh4j0PEeh6h6HkPI8h5HqHkeI8jxHoeI9D1D0PIeR5D0PUPI9Q8jxHkeI9DxHoeoeh5DyPIeR6h5HiPI8R5HkPQ8R6HqHoeQ8jyHkeoeR4jyPJUE8jyPQ8jyPQ8jyPI8jyPI8jyPQ8j0PQ8j0PI8jyPI9D0PI8jyPI9DyPQ9DyPQ8jyPI8jyPI8jyPQ8jyPQ9D0PI9DyPI8jyPI8jyPI9DyPQ9DyPQ8jyPI8jyPI8jyPI8j0PI9D0PI9DyPI8jyPI8jyPI8jyPQ8j0PQ8j0PI8jyPI8jyPI8j0PI9D0PI9DyPI8jyPI8jyPI8jyPQ8j0PQ8j0PI8jyPI8jyPI8j0PI9D0PQ9DyPQ8jyPI8jyPI9DyPQ9D0PQ9DyPI9DyPI8jyPI8j0PI9D0PQ9DyPQ8jyPI8j0PQ8jyPQ8j0PQ9D0PI9DyPI8jwkE8lKS/I/Q/I/Q/I/4j/iP+I/5DQyNDIyMjI0MjQ0MjIyMjQyNDI0MjIyNDI0MjQyMjI0MjQyMjIyNDIyNDIyMjI0MjQyMjIyMjQyNDI0Mj5GRkZGhkaGRoZGRkaGRoZGRkZGhkaGhkZGRkaGRoZGhkZGRoZGhkaGRkZGhkaGRoZGRoZGRoZGRkZGhkaGRkZGRkaGRoZHwpRoZH+IyMjI0MjQyMjIyMjQyNDI0MjI0MjI0MjIyMjQyNDQyMjIyNDI0MjI0MjI0MjQyNDIyMjQyNDI0MjI0MjI0MjIyMjQyPwpRoZGh/qMjIyMjQyNDIyMjIyNDI0MjIyMjI0MjQyNDIyNDIyNDIyMjI0MjQyNDIyMjQyNDIyMjQyNDI0MjQyMjQyMjQyNDIyP6KUZGRoZHI0MjQyMjQyNDIyMjIyNDI0MjIyMjI0MjQyMjIyNDIyNDI0MjI0MjQyMjIyMjQyNDIyNDIyNDI0MjIyMjQ0MjQyND+ClGRkZGRofyGRoZGhkZGhkaGRkaGRkaGRoZGRkZGRoZGhkZGRkZGhkaGRkZGRoZGRoZGhkZGhkaGRkZGRkaGRoZGRkaGRoZGhwpR6GRoZGRkZH6GhkaGRkZGRoZGhoZGRkZGhkaGRkaGRkaGRoZGRkZGRoZGhkZGRkaGRkaGRkZGRoZGhkZGhoZGhkaGRkZGRkf5UlHyPofI+h8j5HyPyPkfI+h8j5HyPkfQ+h8j5HyPkfI+h8j6H0PkfI+R9D5H0PkfQ+R8j6HyPofI+R8j5HyPofQ+R8j5HyPofI+R9D5HyPkfQ+R9D5HyPoeVFHyPkfI+h8j6HyPofI/35H0PkfQ+R/IfI+R8j5H0PkfI+R8j6HyPofI+R8j5H0PkfQ+R9D5HyPofI+h8j6HyPkfQ+R9D5HyPkfI+h8j6HyPkfI+R9D5H0PkVR9D5HyPkfI+h8j6HyPkfI+R9D5H0PkfQ+R8j6HyPofI+h8j5H0PkfQ+R8j5HyPofI+h8j5HyPkfQ+R9D5HyPkfI+h8j6HyPofI+R9D5H0PkfI+R8j6H0qS/7BUqf9gqVP/wKlT/sFSp//F3JFOFCQxEGXDA",
  multiBlockLevel1:
    "QlpoMTFBWSZTWTmpsfoAonPZAHAQSAB/4AIlYBefAAAAAAAfQAAAoAAAAEAAAAAEAAAAAAQAAFMJpoDTEKYTTQGmIUwmmgNMQphNNAaYgUlVUZP96lUfqEPQKVUP1Rqf+qqqGmRn2EFfC+l7I+S6XS6XEcXS4ulyji4uLi6o4uLi4uUdLi4uLpHS6XS4uI6XS6XS4ji6XS6XSOLi4ulyji4uLi6o4uLi4uUdLi6XS6RxcXFxdI6XS6XFxHS6XS6XEcXS6XS6RxcXF0uUcXFxcXVHFxcXFyjpcXFxdI6XS6XFxHS6XS6XEcXS4ulyji4ul0ukcXFxdLlHFxcXF1RxcXFxco6XFxcXSOl0ulxcR0ul0ulxHF0ul0ukcXFxdLlHFxcXF1RxcXFxdUcXFxcXKOlxcXF0jpdLpcXEdLpdLpcRxdLpdLpHFxcXS5RxcXFxdUcXFxcXKOlxcXF0jpdLpcXEdLpcXFyjpcXS6XEcXS6XS6RxcXF0uUcXFxcXVHFxcXFyjpcXFxdI6XS6XFxHS6XS6XEcXS6XS6RxcXF0uUcXFxcXSOl0uLi6o4uLi4uUdLi4uLpHS6XS4uI4ul0ulxHFxcXS6RxcXFxco4uLi4uUcXFxcXSOlxcXFxHS6XS4uI6XS6XFxHF0ul0uI4uLi6XSOLi4uLlHFxcXFyji4uLi6R0uLi4uI6XS6XFxHF0ul0uI4uLi6XSOLi6XS4ji6XFxco4uLi4uUcXFxcXSOlxcXFxHS6XS4uI4ul0ulxHFxcXS6RxcXFxco4uLi4uUcXFxcXSOlxdLpdI4uLi4uI6XS6XFxHF0ul0uI4uLi6XSOLi4uLlHFxcXFyji4uLi6R0uL/wvJfqWL0v7L/C+S/EvJfkv0XkvSxe5aWlixYsWl+lpaWL4WLFpaWli+lixYtLpaWLFixcWlpaWLF9LFpaWl8LFixYtLS/FixYvZYtLSxYsWLwtLS9SxYsWLFpaWL+LRYsWlpYsWLF+LyXqXheF4XheS8lpYvJYsXstLS0sWLFi/S0tLS+FixYtLS0vssWLFi6WlpYsWLixaWlpYvpYsWlpfC0sWLFi0v0sWLF7LFi0tLFixeFi0vRaWLFixYtLS/i0WLFi0tLFixfi8l6l5LwvC8LwvJaWl4WLF7LFpaWlixYv0sWlpfJYsWLFpaX2WlixYuLS0tLFi6WLFpaWl9LFixaXwtLSxYsWL9LSxYvZYsWLS0sWLwsWL0WlpYsWLFi0v6WFixYsWlpYvS/ovC0vJeS8LwvC8L2XsvC0sXssWLS0tLFi/FixaXyWlixYsWl9lpaWLFxYtLS0sXSxYsWlpfZYsWLF8lpaWlixYvxaWli9lixYsWlpYvCxYvRYtLSxYsWLF/S0WLFixYtLS0vxeF6LyXkvJeF4XhYtLwtLS9lixYtLS0sX4sWLF8lpaWLFixfS0tLSxcWLFpaWl0sWLFi0vstLFixfJYtLSxYsX4sWlpe5YsWLFi0tLwsWL0WLFpaWLFixfxaLSxYsWLFpfNL9LwvReF0vJeS8LwsWLwtLS9yxYsWLS0tL8WLFi+FpaWlixYvpYtLS0uLFixaWlxaWLFixfZaWlixfJYsWlpYsX4sWLS9y0sWLFixaXksWL1LFixaWlixYv4sLS0sWLFixYv0vC9F4XheS8l5LwsWLyWLS9y0sWLFi0tL8WlixfCxaWlpYsX0sWLS0ulixYsWlxaWlixYvpaWlpYvhYsWLS0sX4sWLF7lpaWLFixYvJaWL1LFixYtLSxYv4tFi0tLFixYv9SSgfiEFfksLFhaWi0sliyWLRYsLFhaWFpaLSyWLJaWFi0WLCxYWlhaWi0sliyWLRYsLFhaWi0sLS0WlksWSxaLFhYsLSwtLRaWS0sliyWLRYsLFhaWFpaLSyWLJYtFiwsWSxYWlhaWi0sliyWLRYsLFhaWFpaLFotLJYsli0WLCxYWlhaWixZLFosWFiwsWFiwtLC0tFiyWLRYsLFhYsLSwsWFpaLFksWixYWLCxYWlhaWixZLFotLCxYWLCxYWlhaWixZLFkkKxYsWLSxaWlpaWLSxYsWLFi0sWlpaWlixYtLFixYsWLSxaWlpaWLSxYsWLSxYsWli0tLS0sWlixYsWLFpYtLS0tLS0sWlixYsWLFpYtLS0tLFpYsWlpYsWLFpYtLS0tLFpYsWLFixaWLFpaWlpaWLSxYsWLFi0sWlpYtLFixYsWLFixYtLFpaWLSxYsWLFixYsWLSxaWli0sWLFixYsWLSxaWli0sWLFixYsWLFi0sWlpYsqgrVRSPC8LyXheS+F8l8L4Xpey9L2XpaWLFixYtLFpYsWli0sWLSxYtLFpYtLFixaWLSxaWLFi0sWli0sWLFi0tLFpYsWli0sWl/FpaWLFpYtLFpYtLFpYtLFpYsWlixaWLSxYsWLSxYtLFi0sWli0sWLFpYtLFpYsWLSxaWLSxYsWLS0sWlixYsWl/KKWLS9yxaWLFixaWLS0sWLSxaWLSxYtLSxaWLSxYtLFi0sWlixYsWlixaWLFixaWL5pYsWLSxfpYtLFi0sWLSxaWLFi8UUsWli+FpYtLFixYtLFpaWLFixaWLSxaWLSxaWLSxYtLSxaWLSxYtLFpYsWlixYsWli0sWLFixaWLSxYsWli0sWli/KKWlixaXFi0sWlixaWLSxYtLFixYtLFpaWLFixaWLSxYtLSxaWLSxYtLFpaWLSxYtLFpYsWlixYsWli0sWLFixaWL6opaWLSxYvpYsWli0sWLSxYtLFpYsWli0sWLSxYsWLSxaWLSxYsWli0sWLS0sWli0sWLSxaWli0sWLSxaWLSxYsWLFyil6LSxaWLSxeFixYtLFpYsWLFi0sWlixaWLSxYtLFi0sWli0sWLFpYtLFpYsWlixaWLSxYtLFpaWLFixaWLSxaWli/iqkuLi6XF0uLpeS4ulxdLi6XFxcXF0uLpcXFxcXF0ulxcXS4ulxcXS4ulxdLi6XFxcXF0uLpcXFxdLi4ulxcXS4ul0uLFSXF0uLi6XF0uLpcXF0uLpcXS4ul0uLpcXS4uLi4ulxdLi4uLi6XF0uLi6XF0uLpcXF0uLpcXS4uLi4ulxdLi4uLi5SpcXS4ulxcXFxdLi6XFxdLi6XF0uLi6XF0uLpcXF0uLpcXS4uLi4ulxdLi4uLi6XF0uLi6XF0uLpcXF0uLpcXS4uLkpH1JKB9SSgf7/5JQPqSUD9mKCskyms0Up/uwADtKyAOAgkAD/wARKwCP+AAAAAN8pVFUVSlKkqnwAAADGVSUqSkJfAAFMJpoDTEEVVT/Kn7Sqf/6qo9QAFKqjJn+qppiZPUCkqoYTAjAmqpJ5PT9VVDQAKVVG/1KmmjINHFAXScnrDpNNNMGWmWmq0yyy1WmmmWDTTTTQ00000NNNNMGWmmmqyyy01WmWWWq000ywaaaaarLLTTQ00000NNNNMGWmmmqyyy01WmWWWq000ywaaaaaGmmmmhppppgy0y01WmWmmqyyy01WmWWWq000ywaaaaaGmmmmhppppgy0001WWWWmq0yyy1WmmWWq000ywaaaaaGmmmmhppppgy0001WWWWmq0yyy1WmmmWDTTTTQ00000NNNMsGmmmmDLTTTVZZZaarTLLLVaaaZYNNNNNDTTTTQ0000wZaaaarLLLTVaZaaaGmmWWq000ywaaaaaGmmmmhpzk5OTgcWWWmqyyyy1WmWWWDTTTLQ00000NNNNNDTTTTBlpppqssstNVplllqtNNMsGmmmmhppppoaaaaYMtNNNVlllpqtMtNMGWmWWq000ywaaaaaGmmmmhppppgy0001WWWWmq0yyy1WmmmWDTTTTQ00001WWWmmhppppgy0001WWWWmq0yyy1WmmmWDTTTTQ007zrPuei7L4nzO88TrPgfkepJJpJJIYZJJMSSSH5MsssstPJplll2stNMsu5lllpp4ssssvxaaZSSSYMMMmkkkkhhkk6k2XS00yyyyy09mlllllpplzLi9XS9ns9Xq9XFlpxYZNJJJJDDJJiSSSbGGTLLLLxaaZZdrLLTTLuYSSSQ8GSSSTYyQwySSYtNMviyyyy00y4ssullpplllll7MWWWWWWmmn1cXS4uTk4uLiyy4tNPiykkkhhkxJJJNpDDJJJN4stNMu1lllpp2sssssnBhkkk2MkkMMkmJJDD8mWWWWWmnFll0sstNMsssvVi0yyyyy00+zi6XFxcnJxcWWXFlp8mWWWWEMOJJJJtJIYZJJOJJJTTtZZZZadrTLLLLxaaSSbSSSSGGTEkkh0MMk2WWWnJll1MsstNMssvVpaaZZZZZZfZxdLi4uLk9HqSSdGSTQwySSSSQ4lMsvxZZaaZZeLLLLTuZZZZZdrTTLLLxZaaZfiwkkkhhxJJJNJDDJJJJLk0y6mWWWWmmWXqxZaaZZZZZfVydLi4uLi5OTLJ0ZJNJDDJJJJJgwwybTLLLTTLxZZZZdzTLLLD0SSGGSTiSSQw7SSSSSGHBkkk0kkMMkkknUhh6WWWWWWmmXqxZZaaZZZZfVydTi4uLi4uTTLiyy0kkMMkkkmDJDDtJJJJtNPJllll2tNMssu1llhhk4kkkkO0hkkkkhwYcsviyy00yyy4stOlplllllpp6tLLLLTTLL+yQV3kBeFi01NMmmTLJlqaYtNTTJpk0yZZNMmWppi01NMmmTTJlky1NMWmppk0yaZNMmWTLU0xaammTTJpk0yZZMtTTFpqaZNMmmTLJlqaYssmmppk0yaZMsmWppi01NMmmTLU0yZZMtTTFpqaZNMmWTLU0xaYtNTTJpk0yZZMtTTFpqaZNMmmppkyyZammLTU0yaZNMmWTLU0yaYtNTTJpk0yZZMsEFllplpppppplpllplpppppppppplpllplpppppppplpllplpppppppppplpllplpppppppppplpllplpppppppplpllppplpppppppplpllplpppplppppplpllplpppppplpllllplpppppppplpllplppppplpppplpllplpppppppplpppllplpppppppplkgWpAAdHqdTqdTwfE8HxJJJJIZIZIZJJIZIZJJJJIZIZJJJJJIYZJJJIZIZKZZZaZaZaZZZaZaZZZZZZezLLTLLLLLLTLCSSSGSGSSSSSGSGSGWWWmWmWWWWWWmmWWUkkkMkMkkkMkMkMkk2mWmWmWXsoWWXxaZaZaZZaZZaZZZZZZaZZSSSQyQySSSSQyQyQySQySQySSSSSQwySSSyy0yy0yy0y0y05KFJJJsZIZIZIZJIZJIZIZJIZIZJJJJJJIZJJZZaZaZZZZZaZaZaZSQySQyQySSSQyQySTZZafZQstMsu5llllpllllpplplpllpllplDJJDJDJJJJJJJDJJJJJDJDJJJJDJJDJDJLTLTLLTLLLyULLTLSTiQySSSQySSQySSQySSSQwyQyQySQyQySUyy0y0yyyyyyy0yyyyy0y0yyyy0yy0y0y7lC6WWWWmWnFlpllplplplllplpllllpllpJJJJDJDDJJJJDJDJJDJJDJDJJJJJJJDJJLLTLLT5UF7PV6vV6vZ6uLLTTTLTLTTLTLTLTLTTTTLTTTTTLTTTTTLTLLTTTLTLTLTTLTLTTTTTT4RUy0y0000005ZaaaafU0y0000y0y0y00y0y0y0000y000000y0000y0y0y00y0y0y0xVTTTLTLTLTTLTLTTTTTTLTTTTTTLTTTTLTLTLTTLTLTLTTLTLTTTTTTLTTTTLTLTUBxSBXFIFf1IFcUgV/i7kinChIaOPOQQA==",
  runs: "QlpoOTFBWSZTWdADNaEAAMn/////////////////////////////////////////////wAI8AACTAATAAEwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAASYACYAAmAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAACTAATAAEwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAACqqTUmTRiYTABMAAEwAEwABMCMmJiH6nqAAAAmAAAGgCYEwRiYjAjTAATAAAAAAAJh7PfBIiBDgwocGAh/GRc+Q+UjBGSNHzEbI4R0jx85HyQEhJESMkhJSTEnJQSk+glRKyWEtJcS8mBMSZEzJoTUmxNycEznJOj6Sdk8J6T4n5QCglCKGUQopRijn1FIKSUopZTCmlOKeVAqJUiplUKqVY+sq5WCslaK2Vw+w+0rpXj7ivlgLCfeWIsZZD8D8T8iEQoFAhiGRBCgdqCQoFG+IssCL2WCipEQ0WgkEs5aC0lqLWWwtpbi3lwLiXIuZdC6l2LuXgvJei9l8L6fmX4v5gDAmCMGYQwphjDmIMSYoxZjDGmOMeZAyJkjJkSZQypljLmYMyZozZ+hnDOmeM+aA0J+pojRmkNKaY/Y/c05qDUn8GqNWaw/k/o1prjXmwNibI/s/w2Z/ptDam2Nubg3Jujdm8N6b435wD/jgnCOGcQ4pxjjnIOSco5ZzDmnOOedA6J0jpnUOqdY652DsmE7RhjtncO6d4754DwniPGeQ8p5jznoPSeo9Z7CJkECJ/8y57T3HvPgLuSKcKEhoAZrQg=",
};

/** bz2.compress(lines, 1): two blocks of at most 100 000 bytes. */
function multiBlockPayload(): Uint8Array {
  let s = "";
  for (let i = 0; i < 12000; i++) s += `line ${(i % 97).toString()} ${"#".repeat(i % 7)}\n`;
  return new TextEncoder().encode(s);
}

/** bz2.compress(runs, 9): every RLE1 case (runs of 4, 5, 259, 3) and all 256 byte values. */
function runsPayload(): Uint8Array {
  const parts: number[] = [];
  const rep = (b: number, n: number): void => {
    for (let i = 0; i < n; i++) parts.push(b);
  };
  rep(0x61, 1000);
  rep(0x62, 4);
  rep(0x63, 5);
  rep(0x64, 259);
  rep(0x65, 3);
  for (let k = 0; k < 4; k++) for (let b = 0; b < 256; b++) parts.push(b);
  rep(0, 300);
  return Uint8Array.from(parts);
}

const b64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "base64"));
const cat = (...parts: Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(parts));

function decode(bytes: Uint8Array): { bytes: Uint8Array; info: ReturnType<typeof decodeBzip2> } {
  const parts: Buffer[] = [];
  const info = decodeBzip2(new BufferSource(bytes), (c) => parts.push(Buffer.from(c)));
  return { bytes: new Uint8Array(Buffer.concat(parts)), info };
}

/** The empty stream bz2.compress(b"") writes: header and end-of-stream marker with CRC 0. */
const EMPTY = Uint8Array.from([0x42, 0x5a, 0x68, 0x39, 0x17, 0x72, 0x45, 0x38, 0x50, 0x90, 0, 0, 0, 0]);

describe("decodeBzip2", () => {
  it("decodes a multi-block stream", () => {
    const { bytes, info } = decode(b64(SAMPLES.multiBlockLevel1));
    expect(Buffer.from(bytes).equals(Buffer.from(multiBlockPayload()))).toBe(true);
    expect(info).toEqual({ streams: 1, blocks: 2, uncompressedBytes: multiBlockPayload().length });
  });

  it("undoes every run-length case and maps all 256 byte values", () => {
    expect(Buffer.from(decode(b64(SAMPLES.runs)).bytes).equals(Buffer.from(runsPayload()))).toBe(true);
  });

  it("decodes the empty stream and concatenated streams (as Python's BZ2File does)", () => {
    expect(decode(EMPTY).info).toEqual({ streams: 1, blocks: 0, uncompressedBytes: 0 });
    const both = decode(cat(b64(SAMPLES.runs), EMPTY, b64(SAMPLES.runs)));
    expect(both.info.streams).toBe(3);
    expect(both.bytes.length).toBe(2 * runsPayload().length);
  });

  it.each<[string, (b: Uint8Array) => Uint8Array]>([
    ["a bad magic", (b) => cat(Uint8Array.from([0x42, 0x5a, 0x30]), b.subarray(3))],
    ["block size digit 0", (b) => cat(b.subarray(0, 3), Uint8Array.from([0x30]), b.subarray(4))],
    [
      "a randomised block",
      (b) => {
        const c = b.slice();
        c[14] = (c[14] as number) | 0x80; // the bit after the block magic and CRC
        return c;
      },
    ],
    [
      "a block CRC mismatch",
      (b) => {
        const c = b.slice();
        c[10] = (c[10] as number) ^ 0x01;
        return c;
      },
    ],
    [
      "a stream CRC mismatch",
      (b) => {
        const c = b.slice();
        c[c.length - 3] = (c[c.length - 3] as number) ^ 0x10;
        return c;
      },
    ],
    ["a truncation", (b) => b.subarray(0, b.length - 5)],
    ["trailing garbage", (b) => cat(b, Uint8Array.from([0x2e]))],
    ["trailing zeros", (b) => cat(b, new Uint8Array(4))],
  ])("rejects %s", (_name, mutate) => {
    expect(() => decode(mutate(b64(SAMPLES.multiBlockLevel1)))).toFailWithCode("malformed_container");
  });

  it("bounds a block by the declared block size: at it and past it", () => {
    // One block of ~143 000 symbols, written at level 2 (200 000-byte blocks).
    const level2 = b64(SAMPLES.oneBlockLevel2);
    expect(decode(level2).bytes.length).toBe(multiBlockPayload().length);
    const relabelled = cat(level2.subarray(0, 3), Uint8Array.from([0x31]), level2.subarray(4));
    expect(() => decode(relabelled)).toFailWithCode("malformed_container");
  });

  it("stops when the sink throws", () => {
    const err = new GatewayError("limit_exceeded", "full");
    expect(() =>
      decodeBzip2(new BufferSource(b64(SAMPLES.runs)), () => {
        throw err;
      }),
    ).toThrow(err);
  });

  it("never throws anything but malformed_container on mutated streams, and always ends", () => {
    const base = b64(SAMPLES.runs);
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }), (edits) => {
        const bytes = base.slice();
        for (const [at, v] of edits) bytes[at] = v;
        const code = codeOf(() => decode(bytes));
        expect([undefined, "malformed_container"]).toContain(code);
      }),
      { numRuns: 300 },
    );
  });
});
